# METADATA
# title: Celonis Storage Manager
# description: |
#   System celonis-storage-manager: bucket permissions GET, LIST, DELETE and
#   the File Storage Manager service. Source:
#   shared/vendor-docs/celonis-task-mining-permissions.txt, screenshots section
#   ("must be granted permissions for that storage bucket and the File Storage Manager service").
package permatrix.systems.celonis_storage_manager

import data.permatrix.celonis
import data.permatrix.lib

# Each permission is held through a grant covering the scope, for admins
# too: "anyone who wants to view these screenshots must be granted
# permissions for that storage bucket and the File Storage Manager service"
# (celonis-task-mining-permissions.txt, line 38; see celonis.grant_decision).
decision := celonis.grant_decision("celonis-storage-manager", input.action, lib.scope)

violations contains v if some v in celonis.member_violations

# Who may grant: a Celonis admin (celonis.grant_forbidden).
forbidden contains f if some f in celonis.grant_forbidden

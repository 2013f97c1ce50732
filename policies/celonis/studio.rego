# METADATA
# title: Celonis Studio
# description: |
#   System celonis-studio: the Studio Space permission CREATE PACKAGE, which
#   analysts creating custom Task Mining projects need.
#   Source: shared/vendor-docs/celonis-task-mining-permissions.txt, CREATE PROJECT row.
package permatrix.systems.celonis_studio

import data.permatrix.celonis
import data.permatrix.lib

# "the Studio Space permission CREATE PACKAGE": held on a space through a grant there; admins hold it everywhere.
decision := celonis.permission_decision("celonis-studio", input.action, lib.scope)

violations contains v if some v in celonis.member_violations

# Who may grant: a Celonis admin (celonis.grant_forbidden).
forbidden contains f if some f in celonis.grant_forbidden

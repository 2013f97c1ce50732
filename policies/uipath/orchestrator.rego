# METADATA
# title: UiPath Orchestrator (AI Center permissions)
# description: |
#   System uipath-orchestrator: the AI Center permissions that UiPath Task
#   Mining needs, granted in Orchestrator at the tenant (scope service).
#   Source: shared/vendor-docs/uipath-task-mining-automation-suite.txt,
#   "Managing Permissions in Ai Center".
package permatrix.systems.uipath_orchestrator

import data.permatrix.lib

system_id := "uipath-orchestrator"

# uipath-task-mining-automation-suite.txt: "the following permissions need to
# be applied in Orchestrator at the tenant level."
tenant := {"type": "service"}

# A permission is held through a direct grant at the tenant, to the user or
# to one of its groups. uipath-task-mining-automation-suite.txt: "Roles can be
# assigned to individual users or to a group." (The tenant role itself is
# not modelled: its permissions are assigned one by one.)
decision := lib.verdict(reasons, missing)

# The grants of the action at the tenant are looked up by name and scope
# (lib.permission_reasons: each is stored as its reason), not found by
# building every grant the subject holds here.
reasons contains r if {
	some r in lib.permission_reasons(system_id, input.action, tenant.type)
}

missing contains lib.missing_permission(system_id, input.action, tenant) if count(reasons) == 0

# holds(perm): the checked subject holds perm at the tenant, a grant of it
# to the user or one of its groups looked up by name and scope (the grants
# reasons reads). It is what decision allows for a check of perm by the same
# subject and groups (a reason, and then nothing missing), neither the
# reasons nor the verdict built: how UiPath Task Mining asks its AI Center
# prerequisites ("the following permissions need to be applied in
# Orchestrator at the tenant level").
holds(perm) if {
	some p in lib.principals
	data.store.grants[p][system_id].permission[perm][tenant.type]
}

# Who may grant: nobody the document names. uipath-task-mining-automation-suite.txt,
# "How to grant AICenter permissions in Orchestrator", says how ("you must
# first create a tenant role in Orchestrator. To create the role go to
# Orchestrator > Tenant > Manage Access > Roles"), not who; Task Mining's own
# Admin manages Task Mining users only ("Can add any missing members ... to
# the same service"). Least privilege (shared/vendor-docs/README.md): an
# actor may not write here; only the operator (the admin token) does.
forbidden contains msg if {
	is_string(input.actor)
	msg := sprintf("%q may not %s in %s: the document names no one who may grant these tenant permissions (%s); %s", [
		input.actor,
		input.op,
		system_id,
		"uipath-task-mining-automation-suite.txt, \"How to grant AICenter permissions in Orchestrator\"",
		"only the operator (the admin token without an actor) writes here",
	])
}

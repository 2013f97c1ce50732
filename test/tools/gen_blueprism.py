#!/usr/bin/env python3
"""Generates the Blue Prism catalog and per-permission tests.

Reads shared/vendor-docs/blueprism-user-permissions.txt (the permission
tables: category, printed name, description), adds the readings below
(scopes, implications, requirements, derived actions; each cites the
document) and writes
  systems/blueprism/data.json
  policies/blueprism/permissions_test.rego
Run from the repository root:
  python3 test/tools/gen_blueprism.py [path/to/blueprism-user-permissions.txt]
"""
import json
import os
import re
import sys

DOC_NAME = "blueprism-user-permissions.txt"
DEFAULT_DOC = os.path.join("..", "shared", "vendor-docs", DOC_NAME)
if not os.path.exists(DEFAULT_DOC):
    DEFAULT_DOC = os.path.join("/work/shared/vendor-docs", DOC_NAME)

ALL_SCOPES = ["service", "process_group", "object_group", "resource_group"]

# Group-level access rights exist for process groups (Process Studio),
# business object groups (Object Studio) and resource groups (Resources):
# "Manage Process Access Rights: Users can edit the access rights for process
# groups", "Manage Business Object Access Rights: ... for business object
# groups", "Manage Resource Access Rights: ... relating to a resource or
# resource group", and "Multi-team environments (MTE) ... require permissions
# for specific processes, objects, and resources". Everything else is
# service-wide.
GROUP_SCOPE = {
    "Process Studio": "process_group",
    "Object Studio": "object_group",
    "Resources": "resource_group",
}


def slug(name):
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def parse(path):
    """Returns [(category, name, [paragraphs])] in document order."""
    lines = [l.strip() for l in open(path, encoding="utf-8")]
    paras = [l for l in lines if l]
    start = paras.index("The permissions are grouped into different categories:") + 1
    end = paras.index("Multi-team environments (MTE)")
    paras = paras[start:end]
    out, cat, i = [], None, 0
    while i < len(paras):
        p = paras[i]
        if i + 2 < len(paras) and paras[i + 1] == "Permission" and paras[i + 2] == "Description":
            cat, i = p, i + 3
            continue
        # a permission name: a line that is not a sentence
        assert not p.endswith("."), p
        desc, i = [], i + 1
        while i < len(paras) and paras[i].endswith("."):
            desc.append(paras[i])
            i += 1
        assert desc, p
        out.append((cat, p, desc))
    return out


# ---- readings (see docs/systems/blueprism.md) ------------------------------

# Holding the key also lets the user do what each listed permission grants.
IMPLIES = {
    # Edit Business Object: "Users with Create Business Object permission can
    # create and edit a business object, even if they don't have the Edit
    # Business Object permission."
    "create_business_object": ["edit_business_object"],
    # Edit Process: "Users with Create Process permission can create and edit
    # processes, even if they don't have the Edit Process permission."
    "create_process": ["edit_process"],
    # View Dashboards: "Without this permission, or one of the permissions to
    # design dashboards, users can only view the default dashboard".
    "design_global_dashboards": ["view_dashboards"],
    "design_personal_dashboards": ["view_dashboards"],
    "design_published_dashboards": ["view_dashboards"],
    # Full Access to Queue Management: "access and work with queues in the
    # Queue Management and Active Queues areas" (read access is the "access").
    "full_access_to_queue_management": ["read_access_to_queue_management"],
    # View Skill: "Users with this or the Manage Skill permission can view the
    # System > Skills – Management screen."
    "manage_skill": ["view_skill"],
    # Data Gateways – Advanced Configuration: "configure Data Gateways settings
    # and add and manage outputs (the same as Data Gateways – Configuration)".
    "data_gateways_advanced_configuration": ["data_gateways_configuration"],
    # Business Objects – Configure Environment Variables: "They can still view
    # the screen without this if they have the Business Objects – View
    # Environment Variables permission" (so with it, they view it too).
    "business_objects_configure_environment_variables": ["business_objects_view_environment_variables"],
}

# "This permission is not used." / "not actively used by any Blue Prism function".
UNUSED = {
    "audit_view_design_control": "Audit – View Design Control: \"This permission is not used. The Configure Design Control screen cannot be viewed unless the user has the Audit – Configure Design Controls permission.\"",
    "processes_grouping": "Processes – Grouping: \"This permission is not actively used by any Blue Prism function having been superseded by the Edit Process Groups permission.\"",
    "processes_view_environment_variables": "Processes – View Environment Variables: \"This permission is not used. The Environment Variables screen cannot be viewed unless the user has the Processes – Configure Environment Variables permission.\"",
}

# Extra clauses (all of them; each satisfied by any one of its actions) a
# permission's own action needs besides the permission itself.
REQUIRES = {
    # "To import a release, users must also have Import Release."
    "import_global_dashboard": [["import_release"]],
    "import_published_dashboard": [["import_release"]],
    "import_tile": [["import_release"]],
    # Import Skill: "Users can import a release that contains skills." A
    # release import is what Import Release grants.
    "import_skill": [["import_release"]],
    # "Users that also have Business Objects – Web API Services permission can
    # access the System > Objects – Web Connection Settings screen."
    "business_objects_web_connection_settings": [["business_objects_web_api_services"]],
    # Security – View Encryption Scheme Configuration: "The screen will be in
    # read-only mode unless users also have the Security – Manage Encryption
    # Schemes permission." Manage works on the screen View opens.
    "security_manage_encryption_schemes": [["security_view_encryption_scheme_configuration"]],
    # Edit Schedule: "Without this permission, the shortcut menu for schedules
    # or tasks isn't available, preventing users from being able to retire".
    "retire_schedule": [["edit_schedule"]],
}

DESIGN = ["view_dashboards", "design_global_dashboards", "design_personal_dashboards", "design_published_dashboards"]

# Derived actions: scopes, clauses, description (with the citation).
DERIVED = {
    "view_dashboard_tab": (["service"], [DESIGN],
        "View the Dashboard tab in Analytics: View Dashboards or a permission to design dashboards (View Dashboards: \"Without this permission, or one of the permissions to design dashboards, users can only view the default dashboard on the home page.\")."),
    "step_into_process": (["service", "process_group"], [["execute_process"], ["view_process_definition", "edit_process"]],
        "Step into a process while debugging: Execute Process plus View Process Definition or Edit Process (Execute Process: \"Users with the Execute permission who do not have View Process Definition or Edit Process permissions cannot step into the item\")."),
    "step_into_business_object": (["service", "object_group"], [["execute_business_object"], ["view_business_object_definition", "edit_business_object"]],
        "Step into a business object while debugging: Execute Business Object plus View Business Object Definition or Edit Business Object (Execute Business Object: \"... cannot step into the item while debugging an object or process\")."),
    "retire_process": (["service", "process_group"], [["edit_process_groups"], ["manage_process_access_rights"]],
        "Retire a process: Edit Process Groups with Manage Process Access Rights (Edit Process Groups: \"Used in conjunction with Manage Process Access Rights, this permission allows users to retire and unretire processes.\")."),
    "unretire_process": (["service", "process_group"], [["edit_process_groups"], ["manage_process_access_rights"]],
        "Unretire a process: Edit Process Groups with Manage Process Access Rights (Edit Process Groups: \"... allows users to retire and unretire processes.\")."),
    "retire_business_object": (["service", "object_group"], [["edit_object_groups"], ["manage_business_object_access_rights"]],
        "Retire a business object: Edit Object Groups with Manage Business Object Access Rights (Edit Object Groups: \"Used in conjunction with Manage Business Object Access Rights, this permission allows users to retire and unretire business objects.\")."),
    "unretire_business_object": (["service", "object_group"], [["edit_object_groups"], ["manage_business_object_access_rights"]],
        "Unretire a business object: Edit Object Groups with Manage Business Object Access Rights (Edit Object Groups: \"... allows users to retire and unretire business objects.\")."),
    "move_process_group": (["service", "process_group"], [["edit_process_groups"]],
        "Move a process group (the scope) into context.target_group: Edit Process Groups on both (Edit Process Groups: \"Users can also move groups with this permission if they have the appropriate access rights to the target folder.\")."),
    "move_object_group": (["service", "object_group"], [["edit_object_groups"]],
        "Move an object group (the scope) into context.target_group: Edit Object Groups on both (Edit Object Groups: \"Users can also move groups with this permission if they have the appropriate access rights to the target folder.\")."),
    "unretire_schedule": (["service"], [["create_schedule", "retire_schedule"]],
        "Unretire a schedule: Create Schedule (\"Users can create, edit and unretire a schedule.\") or Retire Schedule (\"Users can retire or unretire a schedule.\")."),
    "schedule_shortcut_menu": (["service"], [["edit_schedule"]],
        "Use the shortcut menu for schedules or tasks (Edit Schedule: \"Without this permission, the shortcut menu for schedules or tasks isn't available\")."),
    "run_schedule_now": (["service"], [["edit_schedule"]],
        "Run a schedule or task now from the shortcut menu (Edit Schedule: \"... preventing users from being able to retire, run now, or clone an existing schedule or task.\")."),
    "clone_schedule": (["service"], [["edit_schedule"]],
        "Clone a schedule or task from the shortcut menu (Edit Schedule: \"... preventing users from being able to retire, run now, or clone an existing schedule or task.\")."),
    "delete_schedule_from_shortcut_menu": (["service"], [["delete_schedule"], ["edit_schedule"]],
        "Delete a schedule via the shortcut menu: Delete Schedule (\"via the shortcut menu or a command line\") plus Edit Schedule for the shortcut menu."),
    "configure_process_alerts_from_users_screen": (["service"], [["configure_process_alerts"], ["security_users"]],
        "Configure process alerts from System > Security – Users (Configure Process Alerts: \"Users require the Security – Users permission to access user settings in Blue Prism.\")."),
    "subscribe_to_process_alerts_from_users_screen": (["service"], [["subscribe_to_process_alerts"], ["security_users"]],
        "View process alerts from System > Security – Users (Subscribe to Process Alerts: \"Users require the Security – Users permission to access user settings in Blue Prism.\")."),
    "manage_roles_from_users_screen": (["service"], [["security_user_roles"], ["security_users"]],
        "Manage Blue Prism roles via the hyperlink in System > Security – Users (Security – User Roles: \"This permission also allows users to manage Blue Prism Roles via the related hyperlink in System > Security – Users screen.\")."),
}

# What each permission alone (a custom role with just it, at service scope,
# context {"latest_screen_capture_allowed": true}) allows; default: itself.
# Written independently of the tables above: the tests compare the two.
ALONE = {
    "create_process": ["create_process", "edit_process"],
    "create_business_object": ["create_business_object", "edit_business_object"],
    "design_global_dashboards": ["design_global_dashboards", "view_dashboards", "view_dashboard_tab"],
    "design_personal_dashboards": ["design_personal_dashboards", "view_dashboards", "view_dashboard_tab"],
    "design_published_dashboards": ["design_published_dashboards", "view_dashboards", "view_dashboard_tab"],
    "view_dashboards": ["view_dashboards", "view_dashboard_tab"],
    "import_global_dashboard": [],
    "import_published_dashboard": [],
    "import_tile": [],
    "import_skill": [],
    "full_access_to_queue_management": ["full_access_to_queue_management", "read_access_to_queue_management"],
    "manage_skill": ["manage_skill", "view_skill"],
    "data_gateways_advanced_configuration": ["data_gateways_advanced_configuration", "data_gateways_configuration"],
    "business_objects_configure_environment_variables": ["business_objects_configure_environment_variables", "business_objects_view_environment_variables"],
    "business_objects_web_connection_settings": [],
    "security_manage_encryption_schemes": [],
    "retire_schedule": ["unretire_schedule"],
    "create_schedule": ["create_schedule", "unretire_schedule"],
    "edit_schedule": ["edit_schedule", "schedule_shortcut_menu", "run_schedule_now", "clone_schedule"],
    "audit_view_design_control": [],
    "processes_grouping": [],
    "processes_view_environment_variables": [],
}


def main():
    doc = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_DOC
    perms = {}
    for cat, name, desc in parse(doc):
        pid = slug(name)
        text = " ".join(desc)
        if pid in perms:
            # "System – Scheduler ... is the same as the System – Scheduler
            # permission under the System Manager category": one permission.
            assert pid == "system_scheduler", pid
            perms[pid]["categories"].append(cat)
            continue
        scopes = ["service"] + ([GROUP_SCOPE[cat]] if cat in GROUP_SCOPE else [])
        perms[pid] = {"category": cat, "categories": [cat], "name": name, "scopes": scopes, "description": text}
    assert len(perms) == 95, len(perms)
    for p in perms.values():
        if len(p["categories"]) == 1:
            del p["categories"]
    for table in (IMPLIES, REQUIRES, UNUSED, ALONE):
        for k, v in table.items():
            assert k in perms, k
    known = set(perms) | set(DERIVED)
    for v in list(IMPLIES.values()) + [c for cs in REQUIRES.values() for c in cs] + [c for d in DERIVED.values() for c in d[1]]:
        for a in v:
            assert a in known, a

    actions = {}
    for pid, p in perms.items():
        actions[pid] = {"scopes": p["scopes"], "description": p["description"]}
    for aid, (scopes, _, desc) in DERIVED.items():
        assert aid not in perms, aid
        actions[aid] = {"scopes": scopes, "description": desc, "derived": True,
                        "not_assignable": "a derived action: assign the permissions it needs"}

    requires = dict(REQUIRES)
    for aid, (_, clauses, _) in DERIVED.items():
        requires[aid] = clauses

    catalog = {
        "name": "Blue Prism",
        "vendor": "blueprism",
        "package": "blueprism",
        "documents": [DOC_NAME],
        "scope_types": ALL_SCOPES,
        "context_keys": {
            "release_contains": "import_release: kinds of item the release contains (process, business_object, global_dashboard, published_dashboard, tile, skill); each needs its import permission",
            "overwrite_existing": "import_release: kinds (process, business_object) of which the release overwrites items already in the database, needing Edit Process / Edit Business Object; import_process, import_business_object: true (or [\"process\"] / [\"business_object\"]) when the item already exists",
            "latest_screen_capture_allowed": "view_resource_screen_captures: true when \"Allow latest runtime resource screen capture\" is selected in System – Settings (without it the check is denied)",
            "target_group": "move_process_group, move_object_group: id of the group (same type) the group is moved into",
        },
        "roles": {},
        "permissions": perms,
        "actions": actions,
        "custom_roles": {"scopes": ALL_SCOPES},
        "implies": IMPLIES,
        "requires": requires,
        "unused": UNUSED,
        "conditions": {
            "view_resource_screen_captures": {
                "context": "latest_screen_capture_allowed",
                "message": "View Resource Screen Captures: \"If Allow latest runtime resource screen capture is selected in System –Settings, users with this permission can view a runtime resource screen capture\": context.latest_screen_capture_allowed must be true",
            },
        },
        "release_kinds": {
            "process": {"import": "import_process", "overwrite": "edit_process"},
            "business_object": {"import": "import_business_object", "overwrite": "edit_business_object"},
            "global_dashboard": {"import": "import_global_dashboard"},
            "published_dashboard": {"import": "import_published_dashboard"},
            "tile": {"import": "import_tile"},
            "skill": {"import": "import_skill"},
        },
        "import_actions": {
            "import_release": ["process", "business_object", "global_dashboard", "published_dashboard", "tile", "skill"],
            "import_process": ["process"],
            "import_business_object": ["business_object"],
        },
        "moves": {
            "move_process_group": {"permission": "edit_process_groups", "scope_type": "process_group"},
            "move_object_group": {"permission": "edit_object_groups", "scope_type": "object_group"},
        },
        "access_rights": {
            "process_group": "manage_process_access_rights",
            "object_group": "manage_business_object_access_rights",
            "resource_group": "manage_resource_access_rights",
        },
        "own_role_locked": ["manage_business_object_access_rights", "manage_process_access_rights"],
        "delegation": {"assignments": "security_users", "roles": "security_user_roles"},
    }
    os.makedirs("systems/blueprism", exist_ok=True)
    with open("systems/blueprism/data.json", "w", encoding="utf-8") as f:
        json.dump(catalog, f, indent=2, ensure_ascii=False)
        f.write("\n")

    # ---- per-permission tests -------------------------------------------
    out = [
        "# Generated by test/tools/gen_blueprism.py: do not edit.",
        "# For each of the 95 permissions: a custom role holding only it, at",
        "# service scope, allows exactly the listed actions (its description",
        "# with the document's dependencies; docs/systems/blueprism.md).",
        "package permatrix.systems.blueprism_test",
        "",
    ]
    for pid in sorted(perms):
        exp = sorted(set(ALONE.get(pid, [pid])))
        out.append(f"test_alone_{pid} if {{")
        one = "set()" if not exp else "{" + ", ".join(json.dumps(a) for a in exp) + "}"
        if len(f"\tallowed_alone({json.dumps(pid)}) == {one}") <= 100:
            out.append(f"\tallowed_alone({json.dumps(pid)}) == {one}")
        else:
            out.append(f"\tallowed_alone({json.dumps(pid)}) == {{")
            out.extend(f"\t\t{json.dumps(a)}," for a in exp)
            out.append("\t}")
        out.append("}")
        out.append("")
    with open("policies/blueprism/permissions_test.rego", "w", encoding="utf-8") as f:
        f.write("\n".join(out))
    print(f"{len(perms)} permissions, {len(actions)} actions")


if __name__ == "__main__":
    main()

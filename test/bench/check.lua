-- wrk script: POST one of a few hundred checks per request, spread over
-- subjects, projects and actions so that no single answer is hot.
-- PATH selects the endpoint (permatrix /v1/check, or the Data API for the
-- stock opa baseline, which wants the check under "input").
local path = os.getenv("BENCH_PATH") or "/v1/check"
local wrap = os.getenv("BENCH_WRAP") == "1"
local actions = {"edit_users", "view_project", "edit_client_settings", "create_project", "delete_project"}
local bodies = {}
for i = 1, 500 do
  local action = actions[(i % #actions) + 1]
  local check = string.format(
    '{"subject":"u%d","system":"celonis-task-mining","action":"%s","resource":{"type":"%s","id":"p%d"}}',
    (i * 7919) % 10000, action, action == "create_project" and "service" or "project", i % 50)
  if action == "create_project" then
    check = string.format('{"subject":"u%d","system":"celonis-task-mining","action":"create_project"}', (i * 7919) % 10000)
  end
  if wrap then check = '{"input":' .. check .. '}' end
  bodies[i] = check
end
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, bodies[(n % #bodies) + 1])
end

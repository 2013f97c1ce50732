-- wrk script of test/bench (permabench runs it): POST the checks of a file,
-- one JSON body a line, in order, each wrk thread taking every
-- BENCH_THREADS-th line from its own offset, so that no two requests of a
-- run send the same body until the file is used up (the cold set: every
-- request another user) — or cycling a short file (the hot set).
--   BENCH_BODIES  the file (required)
--   BENCH_PATH    the endpoint: /v1/check (permatrix, the hello-world floor)
--                 or /v1/data/permatrix/decision (stock opa)
--   BENCH_WRAP=1  send {"input": <body>} (OPA's Data API)
--   BENCH_THREADS wrk's -t
local path = os.getenv("BENCH_PATH") or "/v1/check"
local wrap = os.getenv("BENCH_WRAP") == "1"
local file = os.getenv("BENCH_BODIES")
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")

local created = 0
function setup(thread)
  thread:set("tid", created)
  created = created + 1
end

local bodies = {}
local headers = {["Content-Type"] = "application/json"}
function init(args)
  local i = 0
  for line in io.lines(file) do
    if i % nthreads == tid then
      if wrap then line = '{"input":' .. line .. '}' end
      bodies[#bodies + 1] = line
    end
    i = i + 1
  end
  if #bodies == 0 then error("no bodies in " .. file) end
end

local n = 0
function request()
  n = n + 1
  return wrk.format("POST", path, headers, bodies[((n - 1) % #bodies) + 1])
end

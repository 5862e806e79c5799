-- wrk script: print the run's numbers as one JSON line, and collect every `pong N` body (per thread)
-- into PONG_FILE, one number per line, for the correctness check. Every run reads its bodies here, so
-- every run costs wrk the same.
local pong_file = os.getenv("PONG_FILE")
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  pongs = {}
end

function response(status, headers, body)
  if status == 200 then
    local n = body:match("^pong (%d+)$")
    if n then pongs[#pongs + 1] = n end
  end
end

function done(summary, latency, requests)
  local file = io.open(pong_file, "w")
  for _, thread in ipairs(threads) do
    for _, n in ipairs(thread:get("pongs")) do file:write(n, "\n") end
  end
  file:close()
  local errors = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"non2xx":%d,"socket_errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end

-- wrk script: POST /subscribe with a fresh address per request, reusing one
-- session cookie + CSRF token obtained by run.py (env BENCH_COOKIE, BENCH_CSRF).
package.path = (os.getenv("BENCH_LUA_DIR") or ".") .. "/?.lua;" .. package.path
require("pace").install()  -- paced mode when BENCH_RATE is set
local threads = {}
local cookie = os.getenv("BENCH_COOKIE")
local csrf = os.getenv("BENCH_CSRF")
local run_id = os.getenv("BENCH_RUN") or "run"
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
  table.insert(threads, thread)
end

function init(args)
  n = 0
  bad = 0
  headers = {["Content-Type"] = "application/x-www-form-urlencoded", ["Cookie"] = cookie,
             ["Connection"] = "close"}
end

function request()
  n = n + 1
  local body = "csrf_token=" .. csrf .. "&email=b" .. run_id .. "t" .. tid .. "n" .. n ..
               "%40example.org&name=Bench+Reader&frequency=daily&source=bench"
  return wrk.format("POST", "/subscribe", headers, body)
end

function response(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end

function done(summary, latency, requests)
  local non200 = 0
  for _, t in ipairs(threads) do non200 = non200 + t:get("bad") end
  io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d non200=%d socket_errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, non200,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end

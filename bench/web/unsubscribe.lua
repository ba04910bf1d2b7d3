-- wrk script: RFC 8058 one-click POST /unsubscribe/<token>, no cookie, no CSRF,
-- each thread walking its own slice of the token file (env BENCH_TOKENS).
package.path = (os.getenv("BENCH_LUA_DIR") or ".") .. "/?.lua;" .. package.path
require("pace").install()  -- paced mode when BENCH_RATE is set
local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
  table.insert(threads, thread)
end

function init(args)
  paths = {}
  for line in io.lines(os.getenv("BENCH_TOKENS")) do table.insert(paths, "/unsubscribe/" .. line) end
  local nthreads = tonumber(os.getenv("BENCH_THREADS") or "2")
  i = math.floor((tid - 1) * #paths / nthreads)
  bad = 0
  headers = {["Content-Type"] = "application/x-www-form-urlencoded"}
end

function request()
  i = i % #paths + 1
  return wrk.format("POST", paths[i], headers, "List-Unsubscribe=One-Click")
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

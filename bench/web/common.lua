-- What both wrk scripts share: thread numbering, counting non-200 answers, the
-- RESULT line run.py parses, and pacing.
--
-- Pacing: when BENCH_RATE is set, each wrk thread sends on a
-- fixed schedule (BENCH_RATE / BENCH_THREADS requests per second) whatever the
-- answers' latency, so latency is measured at that offered load rather than at
-- saturation. wrk measures from the moment a request is written, so the waits
-- here are not counted. LuaJIT's ffi gives a monotonic millisecond clock.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local CLOCK_MONOTONIC = 1

local common = {}


function common.now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

-- A function for wrk's delay(): milliseconds until this thread's next slot.
-- Slots advance by a fixed step, so a late answer is followed by catch-up sends
-- (no silently skipped requests).
function common.schedule(rate, threads)
  local step = threads * 1000 / rate
  local next_slot = nil
  return function()
    local now = common.now_ms()
    if next_slot == nil then next_slot = now end
    next_slot = next_slot + step
    local wait = next_slot - now
    if wait < 0 then return 0 end
    return wait
  end
end

-- Defines wrk's global setup(), response() and done(), and delay() when BENCH_RATE
-- is set (each wrk thread has its own Lua state, so the schedule is per thread:
-- BENCH_RATE / BENCH_THREADS each). Scripts define init() and request().
function common.install()
  local threads = {}
  function setup(thread)
    table.insert(threads, thread)
    thread:set("tid", #threads)
  end

  function response(status, headers, body)
    if status ~= 200 then bad = (bad or 0) + 1 end
  end

  function done(summary, latency, requests)
    local non200 = 0
    for _, t in ipairs(threads) do non200 = non200 + (t:get("bad") or 0) end
    io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d " ..
                           "max_us=%d non200=%d socket_errors=%d\n",
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max, non200,
      summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
  end

  local rate = tonumber(os.getenv("BENCH_RATE") or "")
  if not rate then return end
  local next_slot_ms = nil
  function delay()
    if next_slot_ms == nil then
      next_slot_ms = common.schedule(rate, tonumber(os.getenv("BENCH_THREADS") or "2"))
    end
    return next_slot_ms()
  end
end

return common

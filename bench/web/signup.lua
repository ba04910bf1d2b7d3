-- wrk script: POST /subscribe with a fresh address per request, reusing one
-- session cookie + CSRF token obtained by run.py (env BENCH_COOKIE, BENCH_CSRF).
package.path = (os.getenv("BENCH_LUA_DIR") or ".") .. "/?.lua;" .. package.path
require("common").install()
local cookie = os.getenv("BENCH_COOKIE")
local csrf = os.getenv("BENCH_CSRF")
local run_id = os.getenv("BENCH_RUN") or "run"

function init(args)
  n = 0
  -- Connection: close, like separate visitors (keep-alive piles wrk's few
  -- connections onto one gunicorn worker).
  headers = {["Content-Type"] = "application/x-www-form-urlencoded", ["Cookie"] = cookie,
             ["Connection"] = "close"}
end

function request()
  n = n + 1
  local body = "csrf_token=" .. csrf .. "&email=b" .. run_id .. "t" .. tid .. "n" .. n ..
               "%40example.org&name=Bench+Reader&frequency=daily&source=bench"
  return wrk.format("POST", "/subscribe", headers, body)
end

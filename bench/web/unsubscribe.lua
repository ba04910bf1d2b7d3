-- wrk script: RFC 8058 one-click POST /unsubscribe/<token>, no cookie, no CSRF,
-- each thread walking its own slice of the token file (env BENCH_TOKENS).
package.path = (os.getenv("BENCH_LUA_DIR") or ".") .. "/?.lua;" .. package.path
require("common").install()

function init(args)
  paths = {}
  for line in io.lines(os.getenv("BENCH_TOKENS")) do table.insert(paths, "/unsubscribe/" .. line) end
  local nthreads = tonumber(os.getenv("BENCH_THREADS") or "2")
  i = math.floor((tid - 1) * #paths / nthreads)
  headers = {["Content-Type"] = "application/x-www-form-urlencoded"}
end

function request()
  i = i % #paths + 1
  return wrk.format("POST", paths[i], headers, "List-Unsubscribe=One-Click")
end

-- wrk script for bench/run.sh: one request shape, one machine-readable result line.
-- env: METHOD (GET|POST), BODY_FILE (request body, read as bytes; optional),
--      CONTENT_TYPE (optional), TOKEN (bearer token; empty sends none),
--      GRPC_WEB=1 (adds the headers a gRPC-Web browser client sends).
local method = os.getenv("METHOD") or "GET"
local body_file = os.getenv("BODY_FILE") or ""
local content_type = os.getenv("CONTENT_TYPE") or ""
local token = os.getenv("TOKEN") or ""

wrk.method = method
if body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  wrk.body = f:read("*a")
  f:close()
end
if content_type ~= "" then wrk.headers["Content-Type"] = content_type end
if token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end
if os.getenv("GRPC_WEB") == "1" then
  wrk.headers["X-Grpc-Web"] = "1"
  wrk.headers["Accept"] = "application/grpc-web+proto"
end

-- Same fields as the peer benchmark's bench.lua, so both tables read alike.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT rps=%.1f p50_ms=%.3f p99_ms=%.3f requests=%d non2xx=%d sockerr=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout))
end

-- wrk script for benchmarks/run.py: one fixed request, and one JSON line of results at the end.
--
-- The request comes from the environment, so the same script drives every endpoint:
--   WRK_METHOD (GET or POST), WRK_BODY (form body, POST only),
--   WRK_AUTHORIZATION (e.g. "Basic ..."), WRK_IF_NONE_MATCH (an ETag).
-- The last line wrk prints is {"requests", "duration_us", "errors", "non_2xx_3xx", "p50_us", "p99_us"}.

wrk.method = os.getenv("WRK_METHOD") or "GET"
local body = os.getenv("WRK_BODY")
if body and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end
local authorization = os.getenv("WRK_AUTHORIZATION")
if authorization and authorization ~= "" then
  wrk.headers["Authorization"] = authorization
end
local etag = os.getenv("WRK_IF_NONE_MATCH")
if etag and etag ~= "" then
  wrk.headers["If-None-Match"] = etag
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\n{"requests": %d, "duration_us": %d, "errors": %d, "non_2xx_3xx": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end

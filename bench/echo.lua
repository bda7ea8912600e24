-- wrk script: POST the echo operation to the URL given on the command line, e.g.
--   wrk -t1 -c1 -d10s --latency -s bench/echo.lua http://127.0.0.1:PORT/DynamoDBManager
-- The one client and body used against every stack memsweep compares. No response() hook:
-- wrk counts failures itself ("Non-2xx or 3xx responses"), and a hook adds client cost.
wrk.method = "POST"
wrk.body = '{"operation":"echo","payload":{"k":"v"}}'
wrk.headers["Content-Type"] = "application/json"

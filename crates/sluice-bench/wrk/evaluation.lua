-- POST an AuthZEN evaluation. The token comes from the environment (SLUICE_TOKEN); the bare
-- handler ignores it. Subject/resource match the live grant made by run-http.sh.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local token = os.getenv("SLUICE_TOKEN")
if token then
  wrk.headers["Authorization"] = "Bearer " .. token
end
wrk.body = '{"subject":{"type":"user","id":"alice"},"action":{"name":"toggle"},'
  .. '"resource":{"type":"flag","id":"production/checkout-v2"}}'

-- POST an OFREP evaluation body with the client key from SLUICE_CLIENT_KEY (the bare handler
-- ignores it). IF_NONE_MATCH, when set, is sent as If-None-Match (the 304 case). DISTINCT=N,
-- when set, gives every request a targetingKey drawn from N (so a server cannot answer from a
-- cache of answers); otherwise every request sends the same context.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("SLUICE_CLIENT_KEY")
if key then
  wrk.headers["X-API-Key"] = key
end
local inm = os.getenv("IF_NONE_MATCH")
if inm and inm ~= "" then
  wrk.headers["If-None-Match"] = inm
end
wrk.body = '{"context":{"targetingKey":"user-1","email":"ann@example.com","version":"2.1.0"}}'
local distinct = tonumber(os.getenv("DISTINCT") or "")
if distinct then
  request = function()
    local body = '{"context":{"targetingKey":"user-' .. math.random(distinct) ..
      '","email":"ann@example.com","version":"2.1.0"}}'
    return wrk.format(nil, nil, nil, body)
  end
end

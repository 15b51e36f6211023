-- domain_delays: store domains' delays; for a domain that refused a request, push its next dispatch (on the
-- dispatch clock) to a whole delay from now (shoal.coordinator.throttle.DomainDelays.flush).
-- KEYS: 1 the crawl's domain_delay, 2 DOMAIN_NEXT. ARGV: triples (domain, delay in ms, refused 0/1).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #ARGV, 3 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  local at = now + tonumber(ARGV[i + 1])
  if ARGV[i + 2] == '1' and at > tonumber(redis.call('HGET', KEYS[2], ARGV[i]) or '0') then
    redis.call('HSET', KEYS[2], ARGV[i], at)
  end
end

-- release_domains: a crawl that ended gives back its part of the per-domain counts shared by every crawl
-- (shoal.coordinator.queues.CrawlQueues.end).
-- KEYS: 1 the crawl's domain_inflight, 2 DOMAIN_INFLIGHT. ARGV: none. Returns how many domains it held.
local held = redis.call('HGETALL', KEYS[1])
for i = 1, #held, 2 do
  local count = tonumber(held[i + 1])
  if count ~= 0 then redis.call('HINCRBY', KEYS[2], held[i], 0 - count) end
end
redis.call('DEL', KEYS[1])
return #held / 2

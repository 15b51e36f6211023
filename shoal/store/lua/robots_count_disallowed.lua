-- robots_count_disallowed: count the URLs found disallowed since the last call into the stats, and forget them
-- (shoal.coordinator.robots.RobotsTxt.count_disallowed).
-- KEYS: 1 the disallowed set, 2 stats hash. ARGV: none. Returns how many were counted.
local n = redis.call('ZCARD', KEYS[1])
if n > 0 then
  redis.call('DEL', KEYS[1])
  redis.call('HINCRBY', KEYS[2], 'robots_disallowed_count', n)
end
return n

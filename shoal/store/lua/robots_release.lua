-- robots_release: move the frontier entries held for a domain's robots.txt to their frontiers, dropping and
-- counting the disallowed ones (shoal.coordinator.robots.RobotsTxt.release).
-- KEYS: 1 the held set, 2 stats hash, then frontiers.
-- ARGV: pairs of (entry, index of its frontier in KEYS; 0: disallowed, counted; -1: unreadable, dropped).
-- Returns how many were disallowed.
local disallowed = 0
for i = 1, #ARGV, 2 do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    local target = tonumber(ARGV[i + 1])
    if target > 0 then
      redis.call('ZADD', KEYS[target], 0, ARGV[i])
    elseif target == 0 then
      disallowed = disallowed + 1
    end
  end
end
if disallowed > 0 then redis.call('HINCRBY', KEYS[2], 'robots_disallowed_count', disallowed) end
return disallowed

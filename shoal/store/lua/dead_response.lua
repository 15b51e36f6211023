-- dead_response: a response entry that is not a shoal response is moved, fields and all, to the dead letters,
-- and counted (shoal.coordinator.queues.CrawlQueues.dead_letter_response).
-- KEYS: 1 responses stream, 2 dead letters stream, 3 stats hash.
-- ARGV: 1 coordinator group, 2 entry id, 3 reason. Returns 1, or 0 when it was acknowledged before.
local entry = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])[1]
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
local fields = {'reason', ARGV[3], 'from', KEYS[1]}
if entry then
  for _, value in ipairs(entry[2]) do fields[#fields + 1] = value end
end
redis.call('XADD', KEYS[2], '*', unpack(fields))
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('HINCRBY', KEYS[3], 'dead_letters', 1)
return 1

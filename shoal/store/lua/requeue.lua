-- requeue: failed requests back to their frontiers, each only if it is still in the failed hash (no dedup
-- check: they were seen already) (shoal.coordinator.queues.CrawlQueues.requeue).
-- KEYS: 1 failed hash, 2 sequence counter, then frontiers.
-- ARGV: 1 the format of an entry's sequence number, then groups of (failed hash field, frontier index in KEYS,
--   prefix, tail). Returns how many moved.
local sequence = ARGV[1]
local moved = 0
for i = 2, #ARGV, 4 do
  if redis.call('HDEL', KEYS[1], ARGV[i]) == 1 then
    local seq = redis.call('INCR', KEYS[2])
    redis.call('ZADD', KEYS[tonumber(ARGV[i + 1])], 0, ARGV[i + 2] .. string.format(sequence, seq) .. ARGV[i + 3])
    moved = moved + 1
  end
end
return moved

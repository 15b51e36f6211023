-- commit: acknowledge a processed response and, in the same step, store its items, deduplicate and schedule
-- its requests, count its stats and release its in-flight slot (shoal.coordinator.queues.CrawlQueues.commit).
-- KEYS: 1 responses stream, 2 seen set, 3 sequence counter, 4 stats hash, 5 items stream, 6 inflight hash,
--   7 the crawl's domain_inflight, 8 DOMAIN_INFLIGHT, then the sorted sets the requests go to.
-- ARGV: 1 response id ('' for none), 2 sid, 3 domain, 4 number of requests, 5 of items, 6 of stats,
--   7 the coordinator group, 8 the items stream's MAXLEN, 9 the format of an entry's sequence number;
--   then per request (index of its sorted set in KEYS, fingerprint, dont_filter 0/1, prefix, tail),
--   the items, and (name, amount) per stat. Returns the requests added, -1 if the response was done before.
local rid = ARGV[1]
if rid ~= '' then
  if redis.call('XACK', KEYS[1], ARGV[7], rid) == 0 then return -1 end
  redis.call('XDEL', KEYS[1], rid)
  if ARGV[2] ~= '' then redis.call('HINCRBY', KEYS[6], ARGV[2], -1) end
  if ARGV[3] ~= '' then
    redis.call('HINCRBY', KEYS[7], ARGV[3], -1)
    redis.call('HINCRBY', KEYS[8], ARGV[3], -1)
  end
end
local sequence = ARGV[9]
local i = 10
local added = 0
for _ = 1, tonumber(ARGV[4]) do
  local is_new = redis.call('SADD', KEYS[2], ARGV[i + 1])
  if is_new == 1 or ARGV[i + 2] == '1' then
    local seq = redis.call('INCR', KEYS[3])
    redis.call('ZADD', KEYS[tonumber(ARGV[i])], 0, ARGV[i + 3] .. string.format(sequence, seq) .. ARGV[i + 4])
    added = added + 1
  end
  i = i + 5
end
for _ = 1, tonumber(ARGV[5]) do
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[8], '*', 'i', ARGV[i])
  i = i + 1
end
for _ = 1, tonumber(ARGV[6]) do
  redis.call('HINCRBY', KEYS[4], ARGV[i], ARGV[i + 1])
  i = i + 2
end
return added

-- replay: in development mode, answer a request from the response cache: it leaves the replay set and its
-- response enters the response stream in one step (shoal.coordinator.queues.CrawlQueues.replay).
-- KEYS: 1 replay set, 2 responses stream, 3 inflight hash, 4 the crawl's domain_inflight, 5 DOMAIN_INFLIGHT.
-- ARGV: 1 the replay set's entry, 2 the cached FetchResult, 3 sid, 4 domain. Returns 1, or 0 if it was gone.
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('XADD', KEYS[2], '*', 'r', ARGV[2])
redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
redis.call('HINCRBY', KEYS[4], ARGV[4], 1)
redis.call('HINCRBY', KEYS[5], ARGV[4], 1)
return 1

-- lease_release: give a crawl's lease up, if the owner still holds it (shoal.coordinator.lease.Leases.release).
-- KEYS: 1 the lease. ARGV: 1 owner. Returns 1 if it was released, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0

-- lease_renew: extend a crawl's lease if its owner holds it, or take it again if it lapsed and nobody claimed
-- it since (shoal.coordinator.lease.Leases.renew).
-- KEYS: 1 the lease. ARGV: 1 owner, 2 lease ms. Returns 1 if the owner holds it now, else 0.
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if not owner then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0

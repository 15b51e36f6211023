-- dedup_create: fix a crawl's dedup on its first commit: its record and, for a Bloom filter, its blocks,
-- allocated whole; a crawl that has its record keeps it (shoal.coordinator.dedup.Dedup.ready).
-- KEYS: 1 the dedup record, then the Bloom filter's blocks.
-- ARGV: 1 number of the record's fields, then (field, value) per field, then each block's size in bits.
-- Returns the record as it stands (HGETALL).
if redis.call('EXISTS', KEYS[1]) == 0 then
  local fields = tonumber(ARGV[1])
  redis.call('HSET', KEYS[1], unpack(ARGV, 2, 1 + 2 * fields))
  for block = 2, #KEYS do
    if redis.call('EXISTS', KEYS[block]) == 0 then
      redis.call('SETBIT', KEYS[block], tonumber(ARGV[2 * fields + block]) - 1, 0)
    end
  end
end
return redis.call('HGETALL', KEYS[1])

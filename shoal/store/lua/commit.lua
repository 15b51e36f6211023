-- commit: acknowledge a processed response and, in the same step, store its items, deduplicate and schedule
-- its requests, count its stats and release its in-flight slot (shoal.coordinator.queues.CrawlQueues.commit).
-- KEYS: 1 responses stream, 2 seen set (or block 0 of the Bloom filter), 3 sequence counter, 4 stats hash,
--   5 items stream, 6 inflight hash, 7 the crawl's domain_inflight, 8 DOMAIN_INFLIGHT, then the Bloom filter's
--   other blocks, then the sorted sets the requests go to.
-- ARGV: 1 response id ('' for none), 2 sid, 3 domain, 4 number of requests, 5 of items, 6 of stats,
--   7 the coordinator group, 8 the items stream's MAXLEN, 9 the format of an entry's sequence number,
--   10 the Bloom filter's bits (0: deduplicate by the seen set), 11 its hashes, 12 its bits per block;
--   then per request (index of its sorted set in KEYS, fingerprint, dont_filter 0/1, prefix, tail),
--   the items, and (name, amount) per stat. Returns the requests added, -1 if the response was done before.
local bits, hashes, block_bits = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])

-- Whether fingerprint fp is new to the Bloom filter (one of its bits is unset); sets them. Its bit positions:
-- enhanced double hashing (Dillinger and Manolios) from two 48-bit numbers, the fingerprint's bytes 1-6 and
-- 7-12, every step below 2^53 so exact in Lua's doubles. Bit n is bit n % block_bits of block n // block_bits.
-- A seen request costs `hashes` GETBITs and no write; a new one a GETBIT or two, then SETBITs from there.
local function bloom_add(fp)
  local b = {string.byte(fp, 1, 12)}
  local x, y = 0, 0
  for j = 1, 6 do
    x = x * 256 + b[j]
    y = y * 256 + b[j + 6]
  end
  x, y = x % bits, y % bits
  local blocks, offsets = {}, {}
  for i = 1, hashes do
    local block = math.floor(x / block_bits)
    blocks[i], offsets[i] = block == 0 and KEYS[2] or KEYS[8 + block], x - block * block_bits
    x = x + y
    if x >= bits then x = x - bits end
    y = (y + i) % bits
  end
  local first = 0
  for i = 1, hashes do
    if redis.call('GETBIT', blocks[i], offsets[i]) == 0 then
      first = i
      break
    end
  end
  if first == 0 then return false end
  for i = first, hashes do
    redis.call('SETBIT', blocks[i], offsets[i], 1)
  end
  return true
end

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
local i = 13
local added, in_bloom = 0, 0
for _ = 1, tonumber(ARGV[4]) do
  local is_new
  if bits == 0 then
    is_new = redis.call('SADD', KEYS[2], ARGV[i + 1]) == 1
  else
    is_new = bloom_add(ARGV[i + 1])
    if is_new then in_bloom = in_bloom + 1 end
  end
  if is_new or ARGV[i + 2] == '1' then
    local seq = redis.call('INCR', KEYS[3])
    redis.call('ZADD', KEYS[tonumber(ARGV[i])], 0, ARGV[i + 3] .. string.format(sequence, seq) .. ARGV[i + 4])
    added = added + 1
  end
  i = i + 5
end
if in_bloom > 0 then redis.call('HINCRBY', KEYS[4], 'bloom_added', in_bloom) end
for _ = 1, tonumber(ARGV[5]) do
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[8], '*', 'i', ARGV[i])
  i = i + 1
end
for _ = 1, tonumber(ARGV[6]) do
  redis.call('HINCRBY', KEYS[4], ARGV[i], ARGV[i + 1])
  i = i + 2
end
return added

-- dispatch: move requests from a crawl's sids' frontiers to their job streams, as far as capacity and politeness
-- allow (shoal.coordinator.queues.CrawlQueues.dispatch).
-- KEYS: 1 inflight, 2 the crawl's domain_inflight, 3 DOMAIN_NEXT, 4 stats, 5 DOMAIN_INFLIGHT, then per sid
--   its frontier and its job stream, and last the crawl's domain_delay (domain -> that domain's own delay in
--   ms: robots.txt floors, AutoThrottle; else `delay`). Per-domain limits and delays count every crawl's requests.
-- ARGV: 1 capacity, 2 per-domain limit, 3 delay (ms), 4 how many frontier entries to scan, 5 the sid served
--   first, 6 the workers group, 7 stale ms, 8 budget, 9 where an entry's domain starts (1-based), 10 the byte
--   that ends it, then the sids. Returns {sent, wait ms (-1: none), frontier size, in flight, dispatched in all}.
local capacity, limit, delay, scan = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local n, first, group, stale_ms = (#KEYS - 6) / 2, tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7])
local domain_at, domain_end = tonumber(ARGV[9]), ARGV[10]
local domain_delays = KEYS[#KEYS]
local per_domain = redis.call('EXISTS', domain_delays) == 1
-- budget: requests this crawl may still dispatch in all (max_pages), -1 for no limit
local budget = tonumber(ARGV[8])
local dispatched = tonumber(redis.call('HGET', KEYS[4], 'requests_dispatched') or '0')
if budget >= 0 then budget = math.max(budget - dispatched, 0) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Jobs waiting in a stream that no worker took for stale_ms belong to a pool that is down or busy:
-- they do not hold other sids' slots.
local function waiting_since(stream)
  local info = redis.call('XINFO', 'GROUPS', stream)
  for _, g in ipairs(info) do
    local fields = {}
    for f = 1, #g, 2 do fields[g[f]] = g[f + 1] end
    if fields['name'] == group then
      local oldest = redis.call('XRANGE', stream, '(' .. fields['last-delivered-id'], '+', 'COUNT', 1)[1]
      if oldest then return tonumber(string.match(oldest[1], '^(%d+)')) end
    end
  end
  return now
end
local function domain_and_end(member)
  local ends = string.find(member, domain_end, domain_at, true)
  return string.sub(member, domain_at, ends - 1), ends
end
local undelivered, leased, inflight_total, fresh_waiting = {}, 0, 0, 0
for i = 1, n do
  local stream = KEYS[5 + 2 * i]
  local inflight = tonumber(redis.call('HGET', KEYS[1], ARGV[10 + i]) or '0')
  undelivered[i] = redis.call('XLEN', stream) - redis.call('XPENDING', stream, group)[1]
  leased = leased + inflight - undelivered[i]
  inflight_total = inflight_total + inflight
  if undelivered[i] > 0 and now - waiting_since(stream) < stale_ms then
    fresh_waiting = fresh_waiting + undelivered[i]
    undelivered[i] = 0  -- counted once, in fresh_waiting
  end
end
local sent_total, wait, frontier_total = 0, -1, 0
for k = 0, n - 1 do
  local i = (first + k) % n + 1
  local frontier, stream, sid = KEYS[4 + 2 * i], KEYS[5 + 2 * i], ARGV[10 + i]
  local room, sent = capacity - leased - fresh_waiting - undelivered[i], 0
  if budget >= 0 then room = math.min(room, budget - sent_total) end
  local function send(member)
    local domain, ends = domain_and_end(member)
    redis.call('XADD', stream, '*', 'j', string.sub(member, ends + #domain_end))
    redis.call('HINCRBY', KEYS[2], domain, 1)
    redis.call('HINCRBY', KEYS[5], domain, 1)
    sent = sent + 1
    return domain
  end
  if room > 0 and limit == 0 and delay == 0 and not per_domain then
    local popped = redis.call('ZPOPMIN', frontier, room)
    for j = 1, #popped, 2 do send(popped[j]) end
  elseif room > 0 then
    for _, member in ipairs(redis.call('ZRANGE', frontier, 0, scan - 1)) do
      if sent >= room then break end
      local domain = domain_and_end(member)
      local ready = limit == 0 or tonumber(redis.call('HGET', KEYS[5], domain) or '0') < limit
      local gap = per_domain and tonumber(redis.call('HGET', domain_delays, domain) or delay) or delay
      if ready and gap > 0 then
        local next_at = tonumber(redis.call('HGET', KEYS[3], domain) or '0')
        if next_at > now then
          ready = false
          if wait < 0 or next_at - now < wait then wait = next_at - now end
        end
      end
      if ready then
        redis.call('ZREM', frontier, member)
        send(member)
        if gap > 0 then redis.call('HSET', KEYS[3], domain, now + gap) end
      end
    end
  end
  if sent > 0 then
    redis.call('HINCRBY', KEYS[1], sid, sent)
    redis.call('HINCRBY', KEYS[4], 'requests_dispatched', sent)
  end
  fresh_waiting = fresh_waiting + sent
  sent_total = sent_total + sent
  inflight_total = inflight_total + sent
  frontier_total = frontier_total + redis.call('ZCARD', frontier)
end
return {sent_total, wait, frontier_total, inflight_total, dispatched + sent_total}

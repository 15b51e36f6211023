-- finish_job: a worker acknowledges a job and publishes its result only if the acknowledgement succeeded, so a
-- job redelivered to a second worker never yields two results, nor a job whose stream is gone
-- (shoal.workers.jobs.JobStreams.finish).
-- KEYS: 1 the job stream, 2 responses stream, 3 dead letters stream, 4 stats hash.
-- ARGV: 1 workers group, 2 entry id, 3 the FetchResult ('' for none), 4 dead-letter reason ('' for none),
--   5 the job (dead-lettered with the reason). Returns 1, or 0 when the job was finished before.
if redis.call('TYPE', KEYS[1]).ok ~= 'stream' then return 0 end
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
if ARGV[3] ~= '' then redis.call('XADD', KEYS[2], '*', 'r', ARGV[3]) end
if ARGV[4] ~= '' then
  redis.call('XADD', KEYS[3], '*', 'reason', ARGV[4], 'job', ARGV[5])
  redis.call('HINCRBY', KEYS[4], 'dead_letters', 1)
end
return 1

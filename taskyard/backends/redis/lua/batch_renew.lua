-- The batching worker's heartbeat, one round trip for every attempt it runs: each lease
-- extended (taskyard's leases set, and the score of its execution in rq's StartedJobRegistry,
-- which rq's tools read as the job's expiry), progress written to rq's meta, rq's heartbeat
-- fields refreshed, and the cancellation flags read back.
-- ARGV[1] rq's key prefix, ARGV[2] the leases sorted set, ARGV[3] unused,
-- ARGV[4] now (rq's date format), ARGV[5] now (epoch seconds), ARGV[6] execution ttl, then per
-- attempt: job id, queue name, execution id, meta JSON or '' (no new progress), lease end
-- (epoch seconds)
-- Returns the cancellation flag ('1' or '') of each attempt, in order.
local rq = ARGV[1]
local out = {}
for i = 7, #ARGV - 4, 5 do
  local id, origin, exec_id, meta, lease_end = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3],
    ARGV[i + 4]
  local job_key = rq .. ':job:' .. id
  redis.call('ZADD', ARGV[2], 'XX', lease_end, id)
  redis.call('ZADD', rq .. ':wip:' .. origin, 'XX', lease_end, id .. ':' .. exec_id)
  local exec_key = rq .. ':execution:' .. id .. ':' .. exec_id
  if redis.call('EXISTS', exec_key) == 1 then
    redis.call('HSET', exec_key, 'last_heartbeat', ARGV[5])
    redis.call('EXPIRE', exec_key, tonumber(ARGV[6]))
  end
  if redis.call('EXISTS', job_key) == 1 then
    redis.call('HSET', job_key, 'last_heartbeat', ARGV[4])
    if meta ~= '' then
      redis.call('HSET', job_key, 'meta', meta)
    end
  end
  out[#out + 1] = redis.call('HGET', job_key, 'taskyard_cancel') or ''
end
return out

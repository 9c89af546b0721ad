-- The batching worker's outcomes, many attempts in one round trip. For each: taskyard's record
-- (record_outcome, the same fenced write rq-class workers run through finish.lua: nothing is
-- written for an attempt a newer one superseded), then what rq's own worker leaves in Redis:
-- the job's rq status and ended_at, its result stream entry (rq's Result format), the finished
-- or failed registry, the expiry of the job, its execution removed from the StartedJobRegistry,
-- the worker's counters; a retry goes back to its queue or to rq's ScheduledJobRegistry.
-- Kind 'undo': an attempt begun by the claim but never run goes back uncounted.
-- ARGV[1] worker name, ARGV[2] now (rq's date format), ARGV[3] now (epoch seconds),
-- ARGV[4] rq's key prefix, ARGV[5] the leases sorted set, ARGV[6] a JSON list with one list
-- per job: id, queue name, execution id, attempt (text), taskyard status, record JSON, meta
-- JSON or '', limit set key or '' (leave it), return value JSON or '', kind ('done', 'retry',
-- 'undo'), rq's encoded return value or exception text (base64) or '', the ARGV index of rq's
-- exc_info (zlib, binary) or 0, ttl (result or failure ttl; -1 forever, 0 none), due
-- (retry/undo: epoch seconds; 0 now, at the back; -1 now, at the front), execution start
-- (epoch seconds, text); ARGV[7...] the exc_info values
-- Returns per job {1 written or 0 superseded, 1 when the job has rq dependents}.
--#include lib_finish
local worker = ARGV[1]
local now_rq = ARGV[2]
local now = tonumber(ARGV[3])
local rq = ARGV[4]
local leases = ARGV[5]
local worker_key = rq .. ':worker:' .. worker
local out = {}
for _, job in ipairs(cjson.decode(ARGV[6])) do
  local id, origin, exec_id, attempt, status = job[1], job[2], job[3], job[4], job[5]
  local record, meta, limit_set, return_json = job[6], job[7], job[8], job[9]
  local kind, encoded = job[10], job[11]
  local exc_info = job[12] > 0 and ARGV[job[12]] or ''
  local ttl, due, started = tonumber(job[13]), tonumber(job[14]), job[15]
  local job_key = rq .. ':job:' .. id
  local composite = id .. ':' .. exec_id
  local written = record_outcome(job_key, leases, limit_set, attempt, status, record, id, meta,
    limit_set ~= '' and '1' or '0', return_json)
  -- this worker's execution ends in every case (rq's cleanup_execution)
  redis.call('DEL', rq .. ':execution:' .. composite)
  redis.call('ZREM', rq .. ':wip:' .. origin, composite)
  redis.call('ZREM', rq .. ':executions:' .. id, exec_id)
  redis.call('SREM', worker_key .. ':executions', composite)
  local dependents = 0
  if written == 1 then
    local results = rq .. ':results:' .. id
    local queue_key = rq .. ':queue:' .. origin
    if kind == 'undo' then
      redis.call('HSET', job_key, 'taskyard_attempt', tostring(tonumber(attempt) - 1))
    end
    if kind == 'done' then
      local success = status == 'SUCCESSFUL'
      local entry = {'type', success and '1' or '2', 'worker_name', worker}
      if encoded ~= '' then
        entry[#entry + 1] = success and 'return_value' or 'exc_string'
        entry[#entry + 1] = encoded
      end
      for _, v in ipairs({'execution_id', exec_id, 'execution_started_at', started,
          'execution_ended_at', ARGV[3]}) do
        entry[#entry + 1] = v
      end
      redis.call('HSET', job_key, 'status', success and 'finished' or 'failed', 'ended_at', now_rq,
        'last_heartbeat', now_rq)
      if not success and exc_info ~= '' then
        redis.call('HSET', job_key, 'exc_info', exc_info)
      end
      if ttl == 0 then
        redis.call('DEL', job_key, results)
      else
        redis.call('XADD', results, 'MAXLEN', '10', '*', unpack(entry))
        local registry = rq .. (success and ':finished:' or ':failed:') .. origin
        if ttl < 0 then
          redis.call('PERSIST', results)
          redis.call('ZADD', registry, '+inf', id)
        else
          redis.call('EXPIRE', results, ttl)
          redis.call('ZADD', registry, now + ttl, id)
          redis.call('EXPIRE', job_key, ttl)
          redis.call('EXPIRE', job_key .. ':dependents', ttl)
          redis.call('EXPIRE', job_key .. ':dependencies', ttl)
        end
      end
      redis.call('HINCRBY', worker_key, success and 'successful_job_count' or 'failed_job_count', 1)
      redis.call('HINCRBYFLOAT', worker_key, 'total_working_time', now - tonumber(started))
      dependents = redis.call('SCARD', job_key .. ':dependents') > 0 and 1 or 0
    else
      -- a retry (rq's Retry: the same job back to its queue, or to the scheduler) or an undo
      if kind == 'retry' then
        local entry = {'type', '4', 'worker_name', worker, 'execution_id', exec_id}
        if encoded ~= '' then
          entry[#entry + 1] = 'exc_string'
          entry[#entry + 1] = encoded
        end
        redis.call('XADD', results, 'MAXLEN', '10', '*', unpack(entry))
        redis.call('HSET', job_key, 'ended_at', now_rq)
      end
      if due > 0 then
        redis.call('HSET', job_key, 'status', 'scheduled')
        redis.call('ZADD', rq .. ':scheduled:' .. origin, due, id)
      else
        redis.call('HSET', job_key, 'status', 'queued')
        if due < 0 then
          redis.call('LPUSH', queue_key, id)
        else
          redis.call('RPUSH', queue_key, id)
        end
      end
    end
  end
  out[#out + 1] = {written, dependents}
end
return out

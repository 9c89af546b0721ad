-- finish_jobs(A): the batching worker's outcomes (see batch_finish.lua; A[1..6] its first
-- six arguments; exc_info values are read from ARGV by absolute index), shared by
-- batch_finish.lua and batch_cycle.lua. Needs lib_finish.
local function finish_jobs(A)
  local worker = A[1]
  local now_rq = A[2]
  local now = tonumber(A[3])
  local rq = A[4]
  local leases = A[5]
  local worker_key = rq .. ':worker:' .. worker
  local out = {}
  for _, job in ipairs(cjson.decode(A[6])) do
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
            'execution_ended_at', A[3]}) do
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
end

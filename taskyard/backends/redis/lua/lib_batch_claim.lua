-- claim_jobs(K, A): the batching worker's claim (see batch_claim.lua; K its KEYS, A its ARGV),
-- shared by batch_claim.lua and batch_cycle.lua. Needs lib_begin.
local function claim_jobs(K, A)
  local want = tonumber(A[1])
  local worker = A[2]
  local rq = A[9]
  local ttl = tonumber(A[8])
  local out = {}
  local n = 0
  local queue_prefix = rq .. ':queue:'
  for _, queue_key in ipairs(K) do
    if n >= want then
      break
    end
    local ids = redis.call('LPOP', queue_key, want - n)
    if ids then
      local queue_name = string.sub(queue_key, #queue_prefix + 1)
      for _, id in ipairs(ids) do
        n = n + 1
        local job_key = rq .. ':job:' .. id
        local f = redis.call('HMGET', job_key, 'status', 'taskyard_status', 'success_callback_name',
          'failure_callback_name', 'stopped_callback_name', 'origin', 'data', 'result_ttl',
          'failure_ttl', 'webhooks', 'repeats_left', 'dependency_ids')
        if f[1] then
          local exec_id = A[7] .. string.format('%08x', n)
          local code, attempt, record, status = 'x', '0', '', f[2] or ''
          local plain = (f[3] or '') == '' and (f[4] or '') == '' and (f[5] or '') == ''
          if f[2] and plain then
            local r = begin_attempt(job_key, A[10], '', '', worker, A[6], A[5], id, exec_id,
              A[4])
            code, attempt, record, status = r[1], r[2], r[3], r[4]
          end
          if code ~= 0 and code ~= -2 then
            local origin = f[6] or queue_name
            redis.call('HSET', job_key, 'status', 'started', 'started_at', A[3],
              'last_heartbeat', A[3], 'worker_name', worker)
            redis.call('PERSIST', job_key)
            local composite = id .. ':' .. exec_id
            local exec_key = rq .. ':execution:' .. composite
            redis.call('HSET', exec_key, 'id', exec_id, 'job_id', id, 'created_at', A[4],
              'last_heartbeat', A[4], 'worker_name', worker)
            redis.call('EXPIRE', exec_key, ttl)
            local executions = rq .. ':executions:' .. id
            redis.call('ZADD', executions, tonumber(A[4]) + ttl + 60, exec_id)
            redis.call('EXPIRE', executions, ttl + 60)
            redis.call('ZADD', rq .. ':wip:' .. origin, A[5], composite)
            local worker_executions = rq .. ':worker:' .. worker .. ':executions'
            redis.call('SADD', worker_executions, composite)
            redis.call('EXPIRE', worker_executions, ttl + 60)
            local unusual = ''
            if not plain or (f[10] or '') ~= '' or (f[11] or '') ~= '' or (f[12] or '') ~= '' then
              unusual = '1'
            end
            for _, v in ipairs({id, origin, exec_id, tostring(code), attempt, record, status,
                f[7] or '', f[8] or '', f[9] or '', unusual}) do
              out[#out + 1] = v
            end
          end
        end
      end
    end
  end
  return out
end

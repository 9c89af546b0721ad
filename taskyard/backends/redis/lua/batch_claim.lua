-- The batching worker's claim: take up to N due jobs from the given rq queues (in order: the
-- highest priority first), start them the way rq's own worker does (status 'started',
-- started_at, last_heartbeat, worker_name, an rq Execution listed in rq's StartedJobRegistry
-- with the lease end as its score) and begin their taskyard attempt (begin_attempt, the same
-- function rq-class workers run through begin.lua) - one round trip for the whole batch.
-- Jobs that are not plainly taskyard's (no taskyard fields, or rq callbacks) are started in rq's
-- view but not begun: the worker's policy decides about them (code 'x').
-- KEYS: the rq queue keys, in order
-- ARGV[1] most jobs to take, ARGV[2] worker name, ARGV[3] now (rq's date format),
-- ARGV[4] now (epoch seconds), ARGV[5] lease end (epoch seconds), ARGV[6] now (ISO 8601),
-- ARGV[7] execution id prefix (24 hex digits; the attempt token too), ARGV[8] execution ttl,
-- ARGV[9] rq's key prefix ('rq'), ARGV[10] the leases sorted set
-- Returns a flat list, 11 items per job: job id, queue name, execution id, code (begin_attempt's,
-- or 'x': not begun), attempt, record, taskyard status, rq's data, result_ttl, failure_ttl,
-- '1' when the job carries anything beyond a plain call (callbacks, webhooks, repeats,
-- dependencies) for the worker's policy to look at, else ''.
--#include lib_begin
local want = tonumber(ARGV[1])
local worker = ARGV[2]
local rq = ARGV[9]
local ttl = tonumber(ARGV[8])
local out = {}
local n = 0
local queue_prefix = rq .. ':queue:'
for _, queue_key in ipairs(KEYS) do
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
        local exec_id = ARGV[7] .. string.format('%08x', n)
        local code, attempt, record, status = 'x', '0', '', f[2] or ''
        local plain = (f[3] or '') == '' and (f[4] or '') == '' and (f[5] or '') == ''
        if f[2] and plain then
          local r = begin_attempt(job_key, ARGV[10], '', '', worker, ARGV[6], ARGV[5], id, exec_id,
            ARGV[4])
          code, attempt, record, status = r[1], r[2], r[3], r[4]
        end
        if code ~= 0 and code ~= -2 then
          local origin = f[6] or queue_name
          redis.call('HSET', job_key, 'status', 'started', 'started_at', ARGV[3],
            'last_heartbeat', ARGV[3], 'worker_name', worker)
          redis.call('PERSIST', job_key)
          local composite = id .. ':' .. exec_id
          local exec_key = rq .. ':execution:' .. composite
          redis.call('HSET', exec_key, 'id', exec_id, 'job_id', id, 'created_at', ARGV[4],
            'last_heartbeat', ARGV[4], 'worker_name', worker)
          redis.call('EXPIRE', exec_key, ttl)
          local executions = rq .. ':executions:' .. id
          redis.call('ZADD', executions, tonumber(ARGV[4]) + ttl + 60, exec_id)
          redis.call('EXPIRE', executions, ttl + 60)
          redis.call('ZADD', rq .. ':wip:' .. origin, ARGV[5], composite)
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

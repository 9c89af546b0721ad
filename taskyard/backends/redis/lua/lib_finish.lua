-- record_outcome: store the outcome of an attempt unless a newer attempt superseded it (shared
-- by finish.lua, run by rq-class workers, and batch_finish.lua, run by the batching worker).
-- Arguments: see finish.lua. Returns 1 written, 0 superseded or gone (nothing written).
local function record_outcome(job_key, leases_key, limit_set, attempt, status, record, job_id,
    meta, leave_limit, return_json)
  local f = redis.call('HMGET', job_key, 'taskyard_attempt', 'status')
  if not f[2] or (f[1] or '0') ~= attempt then
    return 0
  end
  redis.call('HSET', job_key, 'taskyard_status', status, 'taskyard', record)
  if meta ~= '' then
    redis.call('HSET', job_key, 'meta', meta)
  end
  if return_json ~= '' then
    redis.call('HSET', job_key, 'taskyard_return', return_json)
  end
  redis.call('ZREM', leases_key, job_id)
  if leave_limit == '1' then
    redis.call('SREM', limit_set, job_id)
  end
  return 1
end

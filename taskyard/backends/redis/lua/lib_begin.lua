-- begin_attempt: start an attempt of a taskyard job (shared by begin.lua, run by rq-class
-- workers, and batch_claim.lua, run by the batching worker). Arguments and replies: see begin.lua.
local function begin_attempt(job_key, leases_key, expected, given_record, worker_id, now_iso,
    lease_end, job_id, token, now_epoch)
  local f = redis.call('HMGET', job_key, 'status', 'taskyard_attempt', 'taskyard_status',
    'taskyard_cancel', 'taskyard', 'taskyard_token')
  if not f[1] then
    return {-2, '0', '', ''}
  end
  local attempt = f[2] or '0'
  local status = f[3] or ''
  local stored = f[5] or ''
  if not tonumber(attempt) then
    return {-3, '0', 'the attempt counter ' .. attempt .. ' is not a number', status}
  end
  if status == 'SUCCESSFUL' or status == 'FAILED' or status == 'CANCELLED' then
    return {-1, attempt, stored, status}
  end
  if status == 'RUNNING' and f[6] == token then
    return {1, attempt, stored, status}
  end
  if expected ~= '' and expected ~= attempt then
    return {0, attempt, stored, status}
  end
  if f[4] == '1' then
    return {2, attempt, stored, status}
  end
  local record = given_record
  if record == '' then
    if status == 'RUNNING' then
      local lease = redis.call('ZSCORE', leases_key, job_id)
      if lease and tonumber(lease) > tonumber(now_epoch) then
        return {0, attempt, stored, status}
      end
      return {3, attempt, stored, status}
    end
    local r = {}
    if stored ~= '' then
      local ok, decoded = pcall(cjson.decode, stored)
      if not ok or type(decoded) ~= 'table' then
        return {-3, attempt, 'the record is not a JSON object', status}
      end
      r = decoded
    end
    local ids = r['worker_ids']
    if type(ids) ~= 'table' then
      ids = {}
    end
    ids[#ids + 1] = worker_id
    r['worker_ids'] = ids
    if r['started_at'] == nil or r['started_at'] == cjson.null then
      r['started_at'] = now_iso
    end
    r['last_attempted_at'] = now_iso
    record = cjson.encode(r)
  end
  local started = tostring(tonumber(attempt) + 1)
  redis.call('HSET', job_key, 'taskyard_attempt', started, 'taskyard_status', 'RUNNING',
    'taskyard', record, 'taskyard_token', token)
  redis.call('ZADD', leases_key, lease_end, job_id)
  return {1, started, record, 'RUNNING'}
end

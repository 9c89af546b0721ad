-- Start an attempt of a taskyard job (one round trip on the usual path).
-- KEYS[1] job hash, KEYS[2] leases sorted set
-- ARGV[1] attempts the caller saw started ('' on the usual path: whatever it is now)
-- ARGV[2] the new record JSON ('' on the usual path: built here from the stored one)
-- ARGV[3] worker id, ARGV[4] now (ISO 8601), ARGV[5] lease end (epoch seconds), ARGV[6] job id,
-- ARGV[7] this attempt's token (a retried call with the same token is answered, not repeated),
-- ARGV[8] now (epoch seconds)
-- Returns {code, attempt, record, status}: 1 started (attempt = the new attempt's number),
-- 3 the previous attempt is still marked running but its lease ran out (it was interrupted:
-- the caller decides), 2 cancellation requested before the start, -1 already finished,
-- 0 another attempt started since the caller looked or is running now (its lease is live),
-- -2 no such job, -3 the stored record or attempt counter cannot be read.
local f = redis.call('HMGET', KEYS[1], 'status', 'taskyard_attempt', 'taskyard_status',
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
if status == 'RUNNING' and f[6] == ARGV[7] then
  return {1, attempt, stored, status}
end
if ARGV[1] ~= '' and ARGV[1] ~= attempt then
  return {0, attempt, stored, status}
end
if f[4] == '1' then
  return {2, attempt, stored, status}
end
local record = ARGV[2]
if record == '' then
  if status == 'RUNNING' then
    local lease = redis.call('ZSCORE', KEYS[2], ARGV[6])
    if lease and tonumber(lease) > tonumber(ARGV[8]) then
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
  ids[#ids + 1] = ARGV[3]
  r['worker_ids'] = ids
  if r['started_at'] == nil or r['started_at'] == cjson.null then
    r['started_at'] = ARGV[4]
  end
  r['last_attempted_at'] = ARGV[4]
  record = cjson.encode(r)
end
local started = tostring(tonumber(attempt) + 1)
redis.call('HSET', KEYS[1], 'taskyard_attempt', started, 'taskyard_status', 'RUNNING',
  'taskyard', record, 'taskyard_token', ARGV[7])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[6])
return {1, started, record, 'RUNNING'}

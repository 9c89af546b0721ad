-- Record the outcome of an attempt, unless a newer attempt superseded it.
-- KEYS[1] job hash, KEYS[2] leases sorted set, KEYS[3] limit set (ignored unless ARGV[6] = '1')
-- ARGV[1] the attempt number this outcome belongs to, ARGV[2] status, ARGV[3] record JSON,
-- ARGV[4] job id, ARGV[5] rq meta JSON ('' to leave it), ARGV[6] '1' to leave the limit set,
-- ARGV[7] the return value JSON of a successful attempt ('' otherwise): stored with the status so
-- that a reader never sees SUCCESSFUL before rq has written its own result entry
-- Returns 1 written, 0 superseded or gone (nothing written).
local f = redis.call('HMGET', KEYS[1], 'taskyard_attempt', 'status')
if not f[2] or (f[1] or '0') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'taskyard_status', ARGV[2], 'taskyard', ARGV[3])
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'meta', ARGV[5])
end
if ARGV[7] ~= '' then
  redis.call('HSET', KEYS[1], 'taskyard_return', ARGV[7])
end
redis.call('ZREM', KEYS[2], ARGV[4])
if ARGV[6] == '1' then
  redis.call('SREM', KEYS[3], ARGV[4])
end
return 1

-- Record the outcome of an attempt, unless a newer attempt superseded it.
-- KEYS[1] job hash, KEYS[2] leases sorted set, KEYS[3] limit set (ignored unless ARGV[6] = '1')
-- ARGV[1] the attempt number this outcome belongs to, ARGV[2] status, ARGV[3] record JSON,
-- ARGV[4] job id, ARGV[5] rq meta JSON ('' to leave it), ARGV[6] '1' to leave the limit set,
-- ARGV[7] the return value JSON of a successful attempt ('' otherwise): stored with the status so
-- that a reader never sees SUCCESSFUL before rq has written its own result entry
-- Returns 1 written, 0 superseded or gone (nothing written).
--#include lib_finish
return record_outcome(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5],
  ARGV[6], ARGV[7])

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
--#include lib_begin
return begin_attempt(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5],
  ARGV[6], ARGV[7], ARGV[8])

-- One round trip of a busy batching worker: the outcomes that ended since its last claim
-- (finish_jobs, as batch_finish.lua), then the next claim (claim_jobs, as batch_claim.lua).
-- KEYS: the rq queue keys, in order. ARGV[1..10] the claim's arguments (batch_claim.lua),
-- ARGV[11..16] the outcomes' six arguments (batch_finish.lua: worker, now, now, prefix, leases,
-- the JSON list), ARGV[17...] the exc_info values the list refers to by index.
-- Returns {outcomes' reply, claim's reply}.
--#include lib_begin
--#include lib_finish
--#include lib_batch_claim
--#include lib_batch_finish
local done = finish_jobs({ARGV[11], ARGV[12], ARGV[13], ARGV[14], ARGV[15], ARGV[16]})
local taken = claim_jobs(KEYS, ARGV)
return {done, taken}

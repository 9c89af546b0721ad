-- Store a batch of new rq jobs: for each, one HSET of its hash (the fields shared by its group,
-- then its own) and an RPUSH to its queue (or a ZADD into rq's scheduled registry), in input
-- order. The arguments are netstrings ("<length>:<bytes>"), so one argument carries thousands
-- of values without the client packing each one.
-- ARGV[1]: groups: target key, "L" (RPUSH) or "Z" (ZADD), score, number of shared fields,
--          then field, value pairs
-- ARGV[2]: jobs: group number (1-based), job id, then one value per name in ARGV[4]
-- ARGV[3]: the job key prefix (rq:job:)
-- ARGV[4]: names of the fields each job carries itself
-- Returns the number of jobs stored.
local function reader(blob)
  local pos = 1
  return function()
    local colon = string.find(blob, ':', pos, true)
    if not colon then
      return nil
    end
    local n = tonumber(string.sub(blob, pos, colon - 1))
    local value = string.sub(blob, colon + 1, colon + n)
    pos = colon + n + 1
    return value
  end
end

local names = {}
local next_name = reader(ARGV[4])
while true do
  local name = next_name()
  if not name then break end
  names[#names + 1] = name
end

local groups = {}
local next_group = reader(ARGV[1])
while true do
  local target = next_group()
  if not target then break end
  local kind = next_group()
  local score = next_group()
  local n = tonumber(next_group())
  local fields = {}
  for i = 1, 2 * n do
    fields[i] = next_group()
  end
  groups[#groups + 1] = {target, kind, score, fields}
end

local pending_target, pending_kind, pending = nil, nil, {}
local function flush()
  if #pending == 0 then return end
  if pending_kind == 'L' then
    redis.call('RPUSH', pending_target, unpack(pending))
  else
    redis.call('ZADD', pending_target, unpack(pending))
  end
  pending = {}
end

local prefix = ARGV[3]
local next_job = reader(ARGV[2])
local count = 0
while true do
  local number = next_job()
  if not number then break end
  local group = groups[tonumber(number)]
  local id = next_job()
  local args = {prefix .. id}
  for i = 1, #names do
    args[#args + 1] = names[i]
    args[#args + 1] = next_job()
  end
  local shared = group[4]
  for i = 1, #shared do
    args[#args + 1] = shared[i]
  end
  redis.call('HSET', unpack(args))
  if group[1] ~= pending_target or group[2] ~= pending_kind or #pending >= 1000 then
    flush()
    pending_target, pending_kind = group[1], group[2]
  end
  if group[2] == 'Z' then
    pending[#pending + 1] = group[3]
  end
  pending[#pending + 1] = id
  count = count + 1
end
flush()
return count

-- Take the first job waiting in the given rq queues, in order, into that queue's intermediate
-- list (rq's own bookkeeping of jobs taken but not yet started) in one atomic step, so that
-- a worker or a Redis that goes away right after never loses the job: it stays listed.
-- KEYS: queue key 1, its intermediate list, queue key 2, its intermediate list, ...
-- Returns {queue key, job id}, or false when every queue is empty.
for i = 1, #KEYS, 2 do
  local id = redis.call('LPOP', KEYS[i])
  if id then
    redis.call('RPUSH', KEYS[i + 1], id)
    return {KEYS[i], id}
  end
end
return false

-- begin_batch: lock and begin the delivery of every order of one message, in one call.
-- ARGV 10 task id, 11 worker, 12 max unfinished deliveries, 13/14 head/tail of the lock key,
-- 15 lock ttl (ms), 16 due time for an order whose lock another worker holds, 17.. pairs of
-- (order key, lock token).
-- Per order, in order: `SET NX PX` the lock with the token; taken elsewhere -> reschedule_one
-- (no attempt spent) and {'locked'}. Otherwise begin_one; the lock is kept only for 'proceed'
-- and 'crash_loop' (the caller releases it through finish_batch) and dropped at once for the
-- rest. Returns one {action, HGETALL of the entry} per order ({'unknown'} without an entry).
local out = {}
for i = 17, #ARGV, 2 do
  local k, token = ARGV[i], ARGV[i + 1]
  local lk = ARGV[13] .. k .. ARGV[14]
  if not redis.call('SET', lk, token, 'NX', 'PX', ARGV[15]) then
    reschedule_one(k, ARGV[16])
    out[#out + 1] = {'locked'}
  else
    local action = begin_one(k, ARGV[10], ARGV[11], ARGV[12])
    if action ~= 'proceed' and action ~= 'crash_loop' then redis.call('DEL', lk) end
    if action == 'unknown' then
      out[#out + 1] = {'unknown'}
    else
      out[#out + 1] = {action, redis.call('HGETALL', okey(k))}
    end
  end
end
return out

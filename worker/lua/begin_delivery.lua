-- begin_delivery: ARGV 10 task id, 11 worker, 12 max unfinished deliveries.
-- Returns {action, HGETALL of the entry after the call} ({'unknown'} without an entry).
local k = ARGV[9]
local ok = okey(k)
local f = redis.call('HMGET', ok, 'state', 'd_started', 'd_finished', 'next_attempt_at')
local state = f[1]
if not state then return {'unknown'} end
if FINAL[state] then return {'nothing_to_do', redis.call('HGETALL', ok)} end
local started = tonumber(f[2] or '0')
if started - tonumber(f[3] or '0') >= tonumber(ARGV[12]) then
  event(k, {type = 'crash_loop', task_id = ARGV[10], worker = ARGV[11], started = started})
  return {'crash_loop', redis.call('HGETALL', ok)}
end
if state == 'retry_wait' and f[4] and tonumber(f[4]) > NOW then
  return {'not_due', redis.call('HGETALL', ok)}
end
redis.call('ZREM', K_RETRY, k)
redis.call('HSET', ok, 'd_started', started + 1)
redis.call('HDEL', ok, 'next_attempt_at')
set_state(k, state, 'submitting')
event(k, {type = 'delivery_started', task_id = ARGV[10], worker = ARGV[11], delivery = started + 1})
return {'proceed', redis.call('HGETALL', ok)}

-- schedule_retry: ARGV 10 due at (epoch s), 11 '1' to spend an attempt, 12 attempt JSON or ''.
-- Returns 1, or 0 without an entry.
local k = ARGV[9]
local ok = okey(k)
local f = redis.call('HMGET', ok, 'state', 'first_failure_at')
if not f[1] then return 0 end
redis.call('ZADD', K_RETRY, tonumber(ARGV[10]), k)
redis.call('HSET', ok, 'next_attempt_at', ARGV[10])
if ARGV[11] == '1' then redis.call('HINCRBY', ok, 'attempts', 1) end
-- The deadline counts from the first real failure; a reschedule for a taken lock is not one.
if not f[2] and (ARGV[11] == '1' or ARGV[12] ~= '') then
  redis.call('HSET', ok, 'first_failure_at', NOW_S)
end
add_attempt(k, ARGV[12])
set_state(k, f[1], 'retry_wait')
event(k, {type = 'retry_scheduled', due_at = tonumber(ARGV[10]), spend_attempt = (ARGV[11] == '1')})
return 1

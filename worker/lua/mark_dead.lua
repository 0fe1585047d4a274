-- mark_dead: ARGV 10 reason, 11 attempt JSON or ''. Returns 1, or 0 without an entry.
local k = ARGV[9]
local ok = okey(k)
local state = redis.call('HGET', ok, 'state')
if not state then return 0 end
redis.call('ZREM', K_RETRY, k)
redis.call('HSET', ok, 'dead_reason', ARGV[10])
redis.call('HDEL', ok, 'next_attempt_at')
add_attempt(k, ARGV[11])
set_state(k, state, 'dead')
counter('dead_' .. ARGV[10])
event(k, {type = 'dead', reason = ARGV[10]})
return 1

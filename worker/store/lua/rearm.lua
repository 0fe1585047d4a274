-- rearm (replay): PENDING with a fresh budget, version kept. Returns 1, or 0 when there is no
-- entry or only a tombstone (nothing to send).
local k = ARGV[9]
local ok = okey(k)
local f = redis.call('HMGET', ok, 'state', 'raw_hash')
if not f[1] or redis.call('HEXISTS', ok, 'raw') == 0 then return 0 end
fresh_budget(k, f[1])
redis.call('HSET', ok, 'enqueued_at', NOW_S)
redis.call('ZADD', K_ENQ, NOW, k)
set_state(k, f[1], 'pending')
event(k, {type = 'rearmed', previous_state = f[1]})
return 1

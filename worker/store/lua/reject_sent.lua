-- reject_sent (reconciler): Jetti's import log reports an error for the payload last sent.
-- ARGV 10 payload hash, 11 reason, 12 error text, 13 attempt JSON or ''. Only when the order is
-- SUBMITTED or CONFIRMED and that payload is still the last one sent (a newer version in flight
-- is never killed by an error about an older one). Returns 1 when the order is now DEAD, else 0.
local k = ARGV[9]
local ok = okey(k)
local f = redis.call('HMGET', ok, 'state', 'payload_hash')
if (f[1] ~= 'submitted' and f[1] ~= 'confirmed') or f[2] ~= ARGV[10] then return 0 end
redis.call('ZREM', K_RETRY, k)
redis.call('HSET', ok, 'dead_reason', ARGV[11], 'last_error', ARGV[12])
-- Jetti never took that payload: forget it (as replay does), or the next version that yields
-- the same payload (a touch, a re-send) would be skipped as already delivered.
redis.call('HDEL', ok, 'next_attempt_at', 'payload_hash')
add_attempt(k, ARGV[13])
set_state(k, f[1], 'dead')
counter('dead_' .. ARGV[11])
event(k, {type = 'dead', reason = ARGV[11]})
return 1

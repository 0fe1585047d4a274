-- repair (reconciler): Jetti's sale differs from the payload last sent (imports applied out of
-- order, or one lost). PENDING with a fresh budget and the payload hash forgotten, so the worker
-- sends the latest version again instead of skipping it as already accepted. ARGV 10 payload
-- hash expected, 11 most repairs allowed. Returns 1 when re-armed (the caller publishes), 0 when
-- the order moved on, -1 when it was already repaired that often (the caller gives up on it).
local k = ARGV[9]
local ok = okey(k)
local f = redis.call('HMGET', ok, 'state', 'payload_hash')
if (f[1] ~= 'submitted' and f[1] ~= 'confirmed') or f[2] ~= ARGV[10] then return 0 end
if redis.call('HEXISTS', ok, 'raw') == 0 then return 0 end
if tonumber(redis.call('HGET', ok, 'repairs') or '0') >= tonumber(ARGV[11]) then return -1 end
redis.call('HINCRBY', ok, 'repairs', 1)
fresh_budget(k, f[1])
redis.call('HDEL', ok, 'payload_hash')
redis.call('HSET', ok, 'enqueued_at', NOW_S)
redis.call('ZADD', K_ENQ, NOW, k)
set_state(k, f[1], 'pending')
counter('repaired')
event(k, {type = 'repair', previous_state = f[1]})
return 1

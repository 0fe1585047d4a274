-- KEYS[1] heartbeat hash; ARGV holder, now, cutoff: set the holder's field, drop older ones.
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local cutoff = tonumber(ARGV[3])
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  local at = tonumber(flat[i + 1])
  if at == nil or at < cutoff then redis.call('HDEL', KEYS[1], flat[i]) end
end
return 0

-- KEYS: 1 the status index of `dead`, 2.. one reason index each. Returns, per reason index, how
-- many of its members are also still dead: ZINTERCARD without needing Redis 7 (the oldest Redis
-- supported is worker.core.limits.MIN_REDIS_VERSION, 6.2), walking the smaller set of each pair.
local dead = KEYS[1]
local n_dead = redis.call('ZCARD', dead)
local out = {}
for i = 2, #KEYS do
  local small, other = KEYS[i], dead
  if n_dead < redis.call('ZCARD', KEYS[i]) then small, other = dead, KEYS[i] end
  local n = 0
  for _, member in ipairs(redis.call('ZRANGE', small, 0, -1)) do
    if redis.call('ZSCORE', other, member) then n = n + 1 end
  end
  out[#out + 1] = n
end
return out

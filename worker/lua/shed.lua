-- shed: ARGV 10 cutoff (settled before it lose their body), 11 tombstone ttl (s), 12 limit.
-- Returns the number of bodies shed.
local due = redis.call('ZRANGEBYSCORE', K_SHED, '-inf', tonumber(ARGV[10]), 'LIMIT', 0, tonumber(ARGV[12]))
local n = 0
for _, k in ipairs(due) do
  redis.call('ZREM', K_SHED, k)
  local ok = okey(k)
  local state = redis.call('HGET', ok, 'state')
  if SETTLED[state] then
    redis.call('HDEL', ok, 'raw')
    redis.call('HSET', ok, 'shed_at', NOW_S)
    redis.call('ZADD', K_TOMB, NOW + tonumber(ARGV[11]), k)
    event(k, {type = 'shed'})
    n = n + 1
  end
end
return n

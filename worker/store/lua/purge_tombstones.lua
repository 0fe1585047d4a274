-- purge_tombstones: ARGV 10 limit. Deletes tombstones whose time is up, with their indexes.
-- Returns the number purged.
local due = redis.call('ZRANGEBYSCORE', K_TOMB, '-inf', NOW, 'LIMIT', 0, tonumber(ARGV[10]))
local n = 0
for _, k in ipairs(due) do
  redis.call('ZREM', K_TOMB, k)
  local ok = okey(k)
  local state = redis.call('HGET', ok, 'state')
  -- A tombstone revived by a newer version left this index; only a still-shed one goes.
  if state and SETTLED[state] and redis.call('HEXISTS', ok, 'raw') == 0 then
    redis.call('ZREM', IDX[state], k)
    redis.call('ZREM', K_SHED, k)
    redis.call('ZREM', K_ENQ, k)
    redis.call('DEL', ok, ekey(k), akey(k))
    forget(k)
    n = n + 1
  end
end
return n

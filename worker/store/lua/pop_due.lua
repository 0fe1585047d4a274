-- pop_due: ARGV 10 limit. Moves due RETRY_WAIT orders to PENDING; returns their keys.
local due = redis.call('ZRANGEBYSCORE', K_RETRY, '-inf', NOW, 'LIMIT', 0, tonumber(ARGV[10]))
local out = {}
for _, k in ipairs(due) do
  redis.call('ZREM', K_RETRY, k)
  local ok = okey(k)
  local state = redis.call('HGET', ok, 'state')
  if state == 'retry_wait' then
    redis.call('HDEL', ok, 'next_attempt_at')
    set_state(k, state, 'pending')
    event(k, {type = 'retry_due'})
    out[#out + 1] = k
  end
end
return out

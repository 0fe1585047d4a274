-- breaker_trip: opens the breaker unless an operator paused it. KEYS: breaker hash. ARGV: now,
-- probe_s, reason, status ('' for none). Returns 1 when opened.
if redis.call('HGET', KEYS[1], 'state') == 'paused' then
    return 0
end
local now = tonumber(ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'open', 'reason', ARGV[3], 'status', ARGV[4],
           'since', string.format('%.6f', now),
           'probe_at', string.format('%.6f', now + tonumber(ARGV[2])))
return 1

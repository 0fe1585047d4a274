-- breaker_admit: how much of a batch may be submitted now. KEYS: breaker hash. ARGV: now (epoch
-- s), probe_s. Closed or missing: 'all'. Paused: 'none'. Open or half-open: 'probe' for the one
-- caller let through once probe_at has passed (it may send one order; probe_at is pushed out so
-- the next probe waits for this one, or for probe_s if it dies), 'none' otherwise.
local state = redis.call('HGET', KEYS[1], 'state')
if state == false or state == 'closed' then
    return 'all'
end
if state == 'paused' then
    return 'none'
end
local now = tonumber(ARGV[1])
local probe_at = tonumber(redis.call('HGET', KEYS[1], 'probe_at')) or 0
if now < probe_at then
    return 'none'
end
redis.call('HSET', KEYS[1], 'state', 'half_open',
           'probe_at', string.format('%.6f', now + tonumber(ARGV[2])))
return 'probe'

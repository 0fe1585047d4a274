-- breaker_success: closes an open or half-open breaker; writes nothing when closed or paused.
-- KEYS: breaker hash. ARGV: now ('' for Redis TIME). Returns 1 when it closed the breaker.
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'open' or state == 'half_open' then
    local since = ARGV[1]
    if since == '' then
        local t = redis.call('TIME')
        since = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
    end
    redis.call('DEL', KEYS[1])
    redis.call('HSET', KEYS[1], 'state', 'closed', 'since', since)
    return 1
end
return 0

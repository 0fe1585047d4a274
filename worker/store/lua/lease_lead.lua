-- lease_lead: renews the lease for its holder, or takes it when nobody holds it; atomic.
-- KEYS: the lease. ARGV: holder, ttl (ms). Returns 1 when ARGV[1] holds the lease now.
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
end
if current == false then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
return 0

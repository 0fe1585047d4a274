-- rate_block: moves the fleet block later (never earlier); the key expires when the block ends.
-- KEYS: blocked_until. ARGV: until (epoch s). Returns 1 when the block was extended.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local until_s = tonumber(ARGV[1])
if until_s <= now then
    return 0
end
local current = tonumber(redis.call('GET', KEYS[1]))
if current and current >= until_s then
    return 0
end
redis.call('SET', KEYS[1], string.format('%.6f', until_s), 'PXAT', math.ceil(until_s * 1000))
return 1

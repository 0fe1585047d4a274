-- rate_acquire: refill, honour the fleet block, take up to ARGV[3] whole tokens (as many as the
-- bucket holds). KEYS: bucket hash, blocked_until. ARGV: rate (tokens/s), burst, want.
-- Returns {taken, wait} where wait (a string, seconds: Redis truncates Lua numbers to integers)
-- is the time until the next token when fewer than asked were taken (or the remaining block,
-- with 0 taken). The clock is Redis TIME, never the caller's.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local blocked = tonumber(redis.call('GET', KEYS[2]))
if blocked and now < blocked then
    return {0, string.format('%.6f', blocked - now)}
end
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
    tokens = burst
    ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local taken = math.min(want, math.floor(tokens))
tokens = tokens - taken
local wait = 0
if taken < want then
    wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens),
           'ts', string.format('%.6f', now))
-- Once the bucket would be full again its state carries no information; let it go.
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {taken, string.format('%.6f', wait)}

-- finish_delivery: the finish marker of a delivery that began. Returns 1, or 0 without an entry.
local k = ARGV[9]
local ok = okey(k)
local f = redis.call('HMGET', ok, 'state', 'd_started', 'd_finished')
if not f[1] then return 0 end
local finished = tonumber(f[3] or '0') + 1
-- Never above started: a stray finish must not hide a future crash loop.
if finished > tonumber(f[2] or '0') then finished = tonumber(f[2] or '0') end
redis.call('HSET', ok, 'd_finished', finished)
event(k, {type = 'delivery_finished', delivery = finished})
return 1

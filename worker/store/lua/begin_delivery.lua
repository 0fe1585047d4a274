-- begin_delivery: ARGV 10 task id, 11 worker, 12 max unfinished deliveries.
-- Returns {action, HGETALL of the entry after the call} ({'unknown'} without an entry).
local action = begin_one(ARGV[9], ARGV[10], ARGV[11], ARGV[12])
if action == 'unknown' then return {'unknown'} end
return {action, redis.call('HGETALL', okey(ARGV[9]))}

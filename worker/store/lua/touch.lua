-- touch (sweeper re-published the order): refresh state_since and the index score of an order
-- still PENDING or SUBMITTING. Returns 1 when refreshed, else 0.
local k = ARGV[9]
local ok = okey(k)
local state = redis.call('HGET', ok, 'state')
if state ~= 'pending' and state ~= 'submitting' then return 0 end
redis.call('ZADD', IDX[state], NOW, k)
redis.call('HSET', ok, 'state_since', NOW_S)
event(k, {type = 'republished', state = state})
return 1

-- confirm (reconciler): SUBMITTED -> CONFIRMED when the payload confirmed is still the one last
-- sent. ARGV 10 payload hash. Returns 1 when confirmed, 0 otherwise (state moved on, new payload).
local k = ARGV[9]
local ok = okey(k)
local f = redis.call('HMGET', ok, 'state', 'payload_hash')
if f[1] ~= 'submitted' or f[2] ~= ARGV[10] then return 0 end
set_state(k, 'submitted', 'confirmed')
redis.call('HDEL', ok, 'repairs')
counter('confirmed')
event(k, {type = 'confirmed'})
return 1

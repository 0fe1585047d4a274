-- mark_cancelled: the cancellation of the version the worker read is done (in Jetti, or locally
-- when Jetti never had the order). ARGV 10 ts_ms, 11 seq of that version, 12 sale id or '',
-- 13 attempt JSON or '', 14 how ('jetti' or 'not_imported'). Returns 1 when a newer version
-- arrived meanwhile (PENDING again, re-publish), 0 when CANCELLED, -1 without an entry.
local k = ARGV[9]
local ok = okey(k)
local f = redis.call('HMGET', ok, 'state', 'v_ts', 'v_seq')
if not f[1] then return -1 end
redis.call('HSET', ok, 'cancelled_v_ts', ARGV[10], 'cancelled_v_seq', ARGV[11],
  'cancelled_via', ARGV[14])
redis.call('HDEL', ok, 'next_attempt_at', 'first_failure_at', 'replayed')
if ARGV[12] ~= '' then redis.call('HSET', ok, 'sale_id', ARGV[12]) end
redis.call('ZREM', K_RETRY, k)
add_attempt(k, ARGV[13])
local cur_ts, cur_seq = tonumber(f[2]), tonumber(f[3])
local ts, seq = tonumber(ARGV[10]), tonumber(ARGV[11])
if cur_ts > ts or (cur_ts == ts and cur_seq > seq) then
  redis.call('HSET', ok, 'attempts', 0)
  set_state(k, f[1], 'pending')
  event(k, {type = 'cancelled', via = ARGV[14], newer_pending = true})
  return 1
end
set_state(k, f[1], 'cancelled')
counter('cancelled')
event(k, {type = 'cancelled', via = ARGV[14], sale_id = ARGV[12]})
return 0

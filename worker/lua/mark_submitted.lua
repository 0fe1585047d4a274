-- mark_submitted: ARGV 10 sent ts_ms, 11 sent seq, 12 payload hash, 13 line ids (JSON array),
-- 14 sale id or '', 15 attempt JSON or ''. Returns 1 when a newer version arrived meanwhile (the
-- order is PENDING again and must be re-published), 0 when it is SUBMITTED, -1 without an entry.
local k = ARGV[9]
local ok = okey(k)
local f = redis.call('HMGET', ok, 'state', 'v_ts', 'v_seq')
if not f[1] then return -1 end
redis.call('HSET', ok, 'payload_hash', ARGV[12], 'line_ids', ARGV[13], 'sent_v_ts', ARGV[10],
  'sent_v_seq', ARGV[11], 'submitted_at', NOW_S)
redis.call('HDEL', ok, 'next_attempt_at', 'first_failure_at', 'replayed', 'resend_payload')
if ARGV[14] ~= '' then redis.call('HSET', ok, 'sale_id', ARGV[14]) end
redis.call('ZREM', K_RETRY, k)
add_attempt(k, ARGV[15])
local cur_ts, cur_seq = tonumber(f[2]), tonumber(f[3])
local sent_ts, sent_seq = tonumber(ARGV[10]), tonumber(ARGV[11])
if cur_ts > sent_ts or (cur_ts == sent_ts and cur_seq > sent_seq) then
  redis.call('HSET', ok, 'attempts', 0)
  set_state(k, f[1], 'pending')
  event(k, {type = 'submitted', ts_ms = sent_ts, seq = sent_seq, newer_pending = true})
  return 1
end
set_state(k, f[1], 'submitted')
counter('submitted')
event(k, {type = 'submitted', ts_ms = sent_ts, seq = sent_seq, sale_id = ARGV[14]})
return 0

-- replay (`jetti-relay dlq replay`): re-arm a DEAD order in one step. ARGV 10 a corrected raw
-- order or '' (keep the stored one), 11 its hash, 12 its updated_at in ms, 13 a stored payload
-- the worker sends as is instead of re-transforming, or '' (re-transform), 14 '1' to forget the
-- line ids last sent (the engineer accepts an update that drops lines: lines_changed).
-- Returns {outcome, state before}: 'rearmed'; 'not_dead' when the order is not DEAD (already
-- re-armed, in flight or submitted: a rerun must never arm it twice); 'missing' without an
-- entry; 'no_body' when there is no raw order to send.
local k = ARGV[9]
local ok = okey(k)
local f = redis.call('HMGET', ok, 'state', 'v_ts')
local state = f[1]
if not state then return {'missing', ''} end
if state ~= 'dead' then return {'not_dead', state} end
local raw = ARGV[10]
if raw == '' and redis.call('HEXISTS', ok, 'raw') == 0 then return {'no_body', state} end
if raw ~= '' then
  -- A corrected raw order is a new version: the next arrival sequence, and a timestamp above the
  -- stored one (1 ms at least), so the version only goes up and a producer re-sending the version
  -- it corrects is stale instead of undoing the correction; a really newer update still wins.
  local seq = redis.call('INCR', K_SEQ)
  local ts = math.max(tonumber(f[2] or '0') + 1, tonumber(ARGV[12]))
  local previous = redis.call('HGET', ok, 'raw')
  if previous then redis.call('HSET', ok, 'prev_raw', previous) end
  redis.call('HSET', ok, 'raw', raw, 'raw_hash', ARGV[11], 'v_seq', seq,
    'v_ts', string.format('%.0f', ts))
end
if ARGV[13] ~= '' then
  redis.call('HSET', ok, 'resend_payload', ARGV[13])
else
  redis.call('HDEL', ok, 'resend_payload')
end
-- An operator's replay means "send it": forget the payload last accepted, or a re-transform
-- identical to it (an import Jetti's log rejected after a 200) would be skipped as delivered.
redis.call('HDEL', ok, 'payload_hash')
if ARGV[14] == '1' then redis.call('HDEL', ok, 'line_ids') end
fresh_budget(k, state)
redis.call('HSET', ok, 'enqueued_at', NOW_S)
redis.call('ZADD', K_ENQ, NOW, k)
received(k)
set_state(k, state, 'pending')
event(k, {type = 'replay', previous_state = state, raw_replaced = (raw ~= ''),
          resend_stored = (ARGV[13] ~= ''), line_changes_accepted = (ARGV[14] == '1')})
return {'rearmed', state}

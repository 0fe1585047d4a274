-- record: compare-and-set the version of one order. ARGV 10 raw, 11 raw hash, 12 ts_ms, 13 source.
-- Returns {outcome, publish (0/1), ts_ms, seq} of the version stored after the call.
local k = ARGV[9]
local ok = okey(k)
local raw, raw_hash, ts, source = ARGV[10], ARGV[11], tonumber(ARGV[12]), ARGV[13]
local cur = redis.call('HMGET', ok, 'v_ts', 'v_seq', 'raw_hash', 'state')
if not cur[4] then
  local seq = redis.call('INCR', K_SEQ)
  redis.call('HSET', ok, 'raw', raw, 'raw_hash', raw_hash, 'v_ts', ARGV[12], 'v_seq', seq,
    'first_seen_at', NOW_S, 'enqueued_at', NOW_S, 'source', source, 'attempts', 0,
    'd_started', 0, 'd_finished', 0, 'stale', 0)
  set_state(k, nil, 'pending')
  redis.call('ZADD', K_ENQ, NOW, k)
  counter('record_accepted')
  event(k, {type = 'received', outcome = 'accepted', ts_ms = ts, seq = seq, source = source})
  return {'accepted', 1, ARGV[12], tostring(seq)}
end
if cur[3] == raw_hash then
  counter('record_unchanged')
  event(k, {type = 'received', outcome = 'unchanged', ts_ms = ts, source = source})
  return {'unchanged', 0, cur[1], cur[2]}
end
if ts < tonumber(cur[1]) then
  redis.call('HINCRBY', ok, 'stale', 1)
  counter('record_stale')
  event(k, {type = 'received', outcome = 'stale', ts_ms = ts, current_ts_ms = tonumber(cur[1]),
            source = source})
  return {'stale', 0, cur[1], cur[2]}
end
-- Same or later timestamp with different bytes: the later arrival wins the tie.
local seq = redis.call('INCR', K_SEQ)
redis.call('HSET', ok, 'raw', raw, 'raw_hash', raw_hash, 'v_ts', ARGV[12], 'v_seq', seq,
  'enqueued_at', NOW_S, 'source', source)
-- A newer version supersedes a stored payload a replay asked to resend (dlq replay).
redis.call('HDEL', ok, 'shed_at', 'resend_payload')
redis.call('ZREM', K_TOMB, k)
redis.call('ZADD', K_ENQ, NOW, k)
local state = cur[4]
local publish = 0
if FINAL[state] then
  fresh_budget(k, state)
  set_state(k, state, 'pending')
  publish = 1
end
counter('record_updated')
event(k, {type = 'received', outcome = 'updated', ts_ms = ts, seq = seq, source = source,
          coalesced = (publish == 0)})
return {'updated', publish, ARGV[12], tostring(seq)}

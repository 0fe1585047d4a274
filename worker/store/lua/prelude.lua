-- Shared prelude of every ledger script (worker/store/scripts.py LedgerScripts prepends it).
-- KEYS: 1 retry schedule, 2 enqueued index, 3 sequence, 4 shed queue, 5 tombstone index,
--       6 counters, 7.. one state index per state, in the order of ARGV[1], then the order-key
--       index (lexicographic) and the received index.
-- ARGV: 1 state names (space separated), 2-7 head/tail of the per-order hash, events and
--       attempts key names around the ENCODED order key (worker.core.keys.Keys.parts, so no key is
--       spelled here; `enc` below encodes), 8 now (epoch s),
--       9 order key (single-order scripts), 10.. the script's own arguments.
-- Per-order key names are derived inside the script because the multi-order scripts (retry pop,
-- shed) only learn the order keys from a sorted set; like the Celery broker, this assumes one
-- Redis node, not a cluster.
local K_RETRY, K_ENQ, K_SEQ, K_SHED, K_TOMB, K_COUNTERS = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local IDX = {}
local K_KEYIDX, K_RECV
do
  local i = 0
  for name in string.gmatch(ARGV[1], '%S+') do
    i = i + 1
    IDX[name] = KEYS[6 + i]
  end
  K_KEYIDX, K_RECV = KEYS[7 + i], KEYS[8 + i]
end
local NOW_S = ARGV[8]
local NOW = tonumber(NOW_S)
-- This minute's counters (worker.core.keys.Keys.minute_counters), kept MINUTE_KEPT_S after the
-- minute (worker.core.limits.MINUTE_COUNTERS_KEPT_S): the console's last hour.
local MINUTE_KEPT_S = 10800
local K_MINUTE = K_COUNTERS .. ':m:' .. string.format('%d', math.floor(NOW / 60))
local minute_touched = false
local SETTLED = {submitted = true, confirmed = true, cancelled = true}
local FINAL = {submitted = true, confirmed = true, cancelled = true, dead = true}
-- The timeline is for people reading `order show`; the last 200 events are enough.
local EVENTS_KEPT = 200
-- Attempts are bounded by the retry budget; this only stops a runaway loop filling memory.
local ATTEMPTS_KEPT = 1000

-- The order key inside a key name: worker.core.keys.encode_order_key, byte for byte (every byte
-- outside [A-Za-z0-9._~-] becomes %XX, upper-case hex), so no order key can spell another
-- order's key or an index (reliability review #1). Members of indexes stay the raw key.
local ENCODED = {}
local function enc_byte(c) return string.format('%%%02X', string.byte(c)) end
local function enc(k)
  local e = ENCODED[k]
  if e then return e end
  if string.find(k, '[^A-Za-z0-9%._~%-]') then
    e = string.gsub(k, '[^A-Za-z0-9%._~%-]', enc_byte)
  else
    e = k
  end
  ENCODED[k] = e
  return e
end

local function okey(k) return ARGV[2] .. enc(k) .. ARGV[3] end
local function ekey(k) return ARGV[4] .. enc(k) .. ARGV[5] end
local function akey(k) return ARGV[6] .. enc(k) .. ARGV[7] end

local function event(k, ev)
  ev.at = NOW
  local ek = ekey(k)
  redis.call('RPUSH', ek, cjson.encode(ev))
  redis.call('LTRIM', ek, -EVENTS_KEPT, -1)
end

local function counter(field)
  redis.call('HINCRBY', K_COUNTERS, field, 1)
  redis.call('HINCRBY', K_MINUTE, field, 1)
  if not minute_touched then
    redis.call('EXPIRE', K_MINUTE, MINUTE_KEPT_S + 60)
    minute_touched = true
  end
end

-- The order-key and received indexes: every order the ledger holds is in both (search by key
-- prefix and by time); `forget` when its hash is deleted.
local function received(k)
  redis.call('ZADD', K_RECV, NOW, k)
end
local function forget(k)
  redis.call('ZREM', K_KEYIDX, k)
  redis.call('ZREM', K_RECV, k)
end

local function add_attempt(k, attempt_json)
  if attempt_json == nil or attempt_json == '' then return end
  local ak = akey(k)
  redis.call('RPUSH', ak, attempt_json)
  redis.call('LTRIM', ak, -ATTEMPTS_KEPT, -1)
  local a = cjson.decode(attempt_json)
  local err = a.error_class
  if type(err) == 'string' then
    if type(a.excerpt) == 'string' then err = err .. ': ' .. a.excerpt end
    redis.call('HSET', okey(k), 'last_error', err)
  end
  event(k, {type = 'attempt', status = a.status, error_class = a.error_class,
            worker = a.worker, outcome = a.outcome})
end

-- Moves an order to `new` and keeps every index in step: the state indexes (score = time the
-- state was entered), the shed queue (settled orders only) and the enqueued index (unsettled
-- orders only, so its oldest member is the oldest order still waiting).
local function set_state(k, old, new)
  if old and IDX[old] then redis.call('ZREM', IDX[old], k) end
  redis.call('ZADD', IDX[new], NOW, k)
  redis.call('HSET', okey(k), 'state', new, 'state_since', NOW_S)
  if SETTLED[new] then
    redis.call('ZADD', K_SHED, NOW, k)
  else
    redis.call('ZREM', K_SHED, k)
  end
  if FINAL[new] then redis.call('ZREM', K_ENQ, k) end
end

-- New work for an order (a new version after a final state, or a replay): a fresh attempt
-- budget and crash-loop count; the version and the history are kept. `replayed` marks an order
-- that left DEAD, so the worker resolves its dead letter once it goes through.
local function fresh_budget(k, old_state)
  local ok = okey(k)
  local started = redis.call('HGET', ok, 'd_started') or '0'
  redis.call('HSET', ok, 'attempts', 0, 'd_finished', started)
  if old_state == 'dead' then redis.call('HSET', ok, 'replayed', 1) end
  redis.call('HDEL', ok, 'first_failure_at', 'next_attempt_at', 'dead_reason')
  redis.call('ZREM', K_RETRY, k)
end

-- The per-order steps of the worker, as functions the batch scripts (begin_batch, finish_batch)
-- loop over; the ledger's single-order writes are one-item calls of those two scripts.
-- Arguments are strings, as they arrive in ARGV.

-- begin one delivery of order `k`: returns the action ('unknown', 'nothing_to_do', 'crash_loop',
-- 'not_due' or 'proceed').
local function begin_one(k, task_id, worker, max_unfinished)
  local ok = okey(k)
  local f = redis.call('HMGET', ok, 'state', 'd_started', 'd_finished', 'next_attempt_at')
  local state = f[1]
  if not state then return 'unknown' end
  if FINAL[state] then return 'nothing_to_do' end
  local started = tonumber(f[2] or '0')
  if started - tonumber(f[3] or '0') >= tonumber(max_unfinished) then
    event(k, {type = 'crash_loop', task_id = task_id, worker = worker, started = started})
    return 'crash_loop'
  end
  if state == 'retry_wait' and f[4] and tonumber(f[4]) > NOW then return 'not_due' end
  redis.call('ZREM', K_RETRY, k)
  redis.call('HSET', ok, 'd_started', started + 1)
  redis.call('HDEL', ok, 'next_attempt_at')
  set_state(k, state, 'submitting')
  event(k, {type = 'delivery_started', task_id = task_id, worker = worker, delivery = started + 1})
  return 'proceed'
end

-- finish_one: the finish marker of a delivery that ended with an outcome (the worker writes
-- none without one: that delivery is a strike toward the crash-loop bound). Returns 1, or 0
-- without an entry.
local function finish_one(k)
  local ok = okey(k)
  local f = redis.call('HMGET', ok, 'state', 'd_started', 'd_finished')
  if not f[1] then return 0 end
  local finished = tonumber(f[3] or '0') + 1
  -- Never above started: a stray finish must not hide a future crash loop.
  if finished > tonumber(f[2] or '0') then finished = tonumber(f[2] or '0') end
  redis.call('HSET', ok, 'd_finished', finished)
  event(k, {type = 'delivery_finished', delivery = finished})
  return 1
end

-- submitted_one (Jetti accepted the version sent): returns 1 when a newer version arrived
-- meanwhile (the order is PENDING again and must be re-published), 0 when it is SUBMITTED, -1
-- without an entry.
local function submitted_one(k, sent_ts_s, sent_seq_s, payload_hash, line_ids, sale_id, attempt)
  local ok = okey(k)
  local f = redis.call('HMGET', ok, 'state', 'v_ts', 'v_seq')
  if not f[1] then return -1 end
  redis.call('HSET', ok, 'payload_hash', payload_hash, 'line_ids', line_ids, 'sent_v_ts', sent_ts_s,
    'sent_v_seq', sent_seq_s, 'submitted_at', NOW_S)
  -- A stored payload a replay asked to resend (dlq replay --resend-stored) has gone through.
  redis.call('HDEL', ok, 'next_attempt_at', 'first_failure_at', 'replayed', 'resend_payload')
  if sale_id ~= '' then redis.call('HSET', ok, 'sale_id', sale_id) end
  redis.call('ZREM', K_RETRY, k)
  add_attempt(k, attempt)
  local cur_ts, cur_seq = tonumber(f[2]), tonumber(f[3])
  local sent_ts, sent_seq = tonumber(sent_ts_s), tonumber(sent_seq_s)
  if cur_ts > sent_ts or (cur_ts == sent_ts and cur_seq > sent_seq) then
    redis.call('HSET', ok, 'attempts', 0)
    set_state(k, f[1], 'pending')
    event(k, {type = 'submitted', ts_ms = sent_ts, seq = sent_seq, newer_pending = true})
    return 1
  end
  set_state(k, f[1], 'submitted')
  counter('submitted')
  event(k, {type = 'submitted', ts_ms = sent_ts, seq = sent_seq, sale_id = sale_id})
  return 0
end

-- retry_one: RETRY_WAIT until `due` ('1' in `spend` spends an attempt). 1, or 0 without
-- an entry.
local function retry_one(k, due, spend, attempt)
  local ok = okey(k)
  local f = redis.call('HMGET', ok, 'state', 'first_failure_at')
  if not f[1] then return 0 end
  redis.call('ZADD', K_RETRY, tonumber(due), k)
  redis.call('HSET', ok, 'next_attempt_at', due)
  if spend == '1' then redis.call('HINCRBY', ok, 'attempts', 1) end
  -- The deadline counts from the first real failure; a reschedule for a taken lock is not one.
  if not f[2] and (spend == '1' or attempt ~= '') then
    redis.call('HSET', ok, 'first_failure_at', NOW_S)
  end
  add_attempt(k, attempt)
  set_state(k, f[1], 'retry_wait')
  event(k, {type = 'retry_scheduled', due_at = tonumber(due), spend_attempt = (spend == '1')})
  return 1
end

-- dead_one: DEAD with `reason`, out of the retry schedule. 1, or 0 without an entry.
-- `ts_s`/`seq_s` are the version the worker gave up on ('' = not known, no compare). When a
-- newer version arrived meanwhile (coalesced while this one was in flight), that version is new
-- work: no DEAD, a fresh budget and PENDING, and 2 is returned so the caller re-publishes it and
-- resolves the dead letter it wrote for the older version. `extra` (optional) adds fields to
-- the 'dead' event (an operator's discard: actor, note, previous_state).
local function dead_one(k, reason, attempt, ts_s, seq_s, extra)
  local ok = okey(k)
  local f = redis.call('HMGET', ok, 'state', 'v_ts', 'v_seq')
  local state = f[1]
  if not state then return 0 end
  if ts_s and ts_s ~= '' and seq_s and seq_s ~= '' then
    local cur_ts, cur_seq = tonumber(f[2]), tonumber(f[3])
    local ts, seq = tonumber(ts_s), tonumber(seq_s)
    if cur_ts > ts or (cur_ts == ts and cur_seq > seq) then
      add_attempt(k, attempt)
      fresh_budget(k, state)
      set_state(k, state, 'pending')
      event(k, {type = 'dead_superseded', reason = reason, ts_ms = ts, seq = seq,
                newer_pending = true})
      return 2
    end
  end
  redis.call('ZREM', K_RETRY, k)
  redis.call('HSET', ok, 'dead_reason', reason)
  redis.call('HDEL', ok, 'next_attempt_at')
  add_attempt(k, attempt)
  set_state(k, state, 'dead')
  counter('dead_' .. reason)
  local ev = {type = 'dead', reason = reason}
  for field, value in pairs(extra or {}) do ev[field] = value end
  event(k, ev)
  return 1
end

-- reschedule_one (the order's lock is taken elsewhere): PENDING -> RETRY_WAIT until `due`;
-- RETRY_WAIT keeps the earlier due time; SUBMITTING and final states are left alone (the lock
-- holder re-reads the version after submitting; the sweeper covers a holder that died).
-- Returns 1 when the order is (still) scheduled, else 0.
local function reschedule_one(k, due)
  local ok = okey(k)
  local state = redis.call('HGET', ok, 'state')
  if state == 'pending' then
    redis.call('ZADD', K_RETRY, tonumber(due), k)
    redis.call('HSET', ok, 'next_attempt_at', due)
    set_state(k, state, 'retry_wait')
    event(k, {type = 'rescheduled', due_at = tonumber(due), why = 'locked'})
    return 1
  end
  if state == 'retry_wait' then
    redis.call('ZADD', K_RETRY, 'LT', tonumber(due), k)
    redis.call('HSET', ok, 'next_attempt_at', redis.call('ZSCORE', K_RETRY, k))
    return 1
  end
  return 0
end

-- record_one: compare-and-set the version of order `k`. `ts_s` is updated_at in ms (a string), or ''
-- when the copy has none: such a copy is ordered after every earlier copy, by arrival (it takes
-- the stored timestamp and the next sequence), never before them as timestamp 0 would.
-- `cancel` is '1' when the copy carries cancelled_at. A cancellation is terminal: a cancelling
-- copy is recorded even when its timestamp is older than the stored one (again by arrival, so
-- the stored version only goes up and an import in flight is re-read), and once one is recorded
-- (hash field `cancel`, or state CANCELLED) a copy without cancelled_at is 'after_cancel':
-- counted, an event, never stored, so the stored raw stays the cancelling one.
-- publish is 1 for a new order, an update out of a final state, and for any copy of an order
-- still PENDING (a re-run after a producer stopped between recording and publishing must not
-- leave it to the sweeper; a duplicate message is harmless, the worker reads the ledger).
-- Returns {outcome, publish (0/1), ts_ms, seq} of the version stored after the call.
local function record_one(k, raw, raw_hash, ts_s, source, cancel, trace)
  local ok = okey(k)
  local ts = tonumber(ts_s)
  local is_cancel = (cancel == '1')
  local cur = redis.call('HMGET', ok, 'v_ts', 'v_seq', 'raw_hash', 'state', 'cancel')
  local state = cur[4]
  if not state then
    local seq = redis.call('INCR', K_SEQ)
    local first_ts = ts_s
    if ts == nil then first_ts = '0' end
    redis.call('HSET', ok, 'raw', raw, 'raw_hash', raw_hash, 'v_ts', first_ts, 'v_seq', seq,
      'first_seen_at', NOW_S, 'enqueued_at', NOW_S, 'source', source, 'attempts', 0,
      'd_started', 0, 'd_finished', 0, 'stale', 0, 'cancel', is_cancel and 1 or 0)
    if trace ~= nil and trace ~= '' then redis.call('HSET', ok, 'trace', trace) end
    set_state(k, nil, 'pending')
    redis.call('ZADD', K_ENQ, NOW, k)
    redis.call('ZADD', K_KEYIDX, 0, k)
    received(k)
    counter('record_accepted')
    event(k, {type = 'received', outcome = 'accepted', ts_ms = ts, seq = seq, source = source})
    return {'accepted', 1, first_ts, tostring(seq)}
  end
  local still_pending = 0
  if state == 'pending' then still_pending = 1 end
  if cur[3] == raw_hash then
    counter('record_unchanged')
    event(k, {type = 'received', outcome = 'unchanged', ts_ms = ts, source = source})
    return {'unchanged', still_pending, cur[1], cur[2]}
  end
  local cancelled = (cur[5] == '1' or state == 'cancelled')
  if cancelled and not is_cancel then
    redis.call('HINCRBY', ok, 'after_cancel', 1)
    counter('record_after_cancel')
    event(k, {type = 'received', outcome = 'after_cancel', ts_ms = ts, source = source})
    return {'after_cancel', still_pending, cur[1], cur[2]}
  end
  local stored_ts = tonumber(cur[1])
  if ts == nil or (is_cancel and not cancelled) then
    -- Ordered by arrival: never below the stored timestamp.
    if ts == nil or ts < stored_ts then ts = stored_ts end
  elseif ts < stored_ts then
    redis.call('HINCRBY', ok, 'stale', 1)
    counter('record_stale')
    event(k, {type = 'received', outcome = 'stale', ts_ms = ts, current_ts_ms = stored_ts,
              source = source})
    return {'stale', still_pending, cur[1], cur[2]}
  end
  ts_s = string.format('%.0f', ts)
  -- Same or later timestamp with different bytes: the later arrival wins the tie.
  local seq = redis.call('INCR', K_SEQ)
  -- The version replaced is kept for the console's diff (shed with the body, not a tombstone
  -- field).
  local previous = redis.call('HGET', ok, 'raw')
  if previous then redis.call('HSET', ok, 'prev_raw', previous) end
  redis.call('HSET', ok, 'raw', raw, 'raw_hash', raw_hash, 'v_ts', ts_s, 'v_seq', seq,
    'enqueued_at', NOW_S, 'source', source)
  if trace ~= nil and trace ~= '' then redis.call('HSET', ok, 'trace', trace) end
  redis.call('ZADD', K_KEYIDX, 0, k)
  received(k)
  if is_cancel then redis.call('HSET', ok, 'cancel', 1) end
  -- A newer version supersedes a stored payload a replay asked to resend (dlq replay).
  redis.call('HDEL', ok, 'shed_at', 'resend_payload')
  redis.call('ZREM', K_TOMB, k)
  redis.call('ZADD', K_ENQ, NOW, k)
  local publish = 0
  if FINAL[state] then
    fresh_budget(k, state)
    set_state(k, state, 'pending')
    publish = 1
  end
  counter('record_updated')
  event(k, {type = 'received', outcome = 'updated', ts_ms = ts, seq = seq, source = source,
            coalesced = (publish == 0)})
  return {'updated', publish, ts_s, tostring(seq)}
end

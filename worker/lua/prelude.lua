-- Shared prelude of every ledger script (worker/ledger.py prepends it).
-- KEYS: 1 retry schedule, 2 enqueued index, 3 sequence, 4 shed queue, 5 tombstone index,
--       6 counters, 7.. one state index per state, in the order of ARGV[1].
-- ARGV: 1 state names (space separated), 2-7 head/tail of the per-order hash, events and
--       attempts key names (built by worker.keys, so no key is spelled here), 8 now (epoch s),
--       9 order key (single-order scripts), 10.. the script's own arguments.
-- Per-order key names are derived inside the script because the multi-order scripts (retry pop,
-- shed) only learn the order keys from a sorted set; like the Celery broker, this assumes one
-- Redis node, not a cluster.
local K_RETRY, K_ENQ, K_SEQ, K_SHED, K_TOMB, K_COUNTERS = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local IDX = {}
do
  local i = 0
  for name in string.gmatch(ARGV[1], '%S+') do
    i = i + 1
    IDX[name] = KEYS[6 + i]
  end
end
local NOW_S = ARGV[8]
local NOW = tonumber(NOW_S)
local SETTLED = {submitted = true, confirmed = true, cancelled = true}
local FINAL = {submitted = true, confirmed = true, cancelled = true, dead = true}
-- The timeline is for people reading `order show`; the last 200 events are enough.
local EVENTS_KEPT = 200
-- Attempts are bounded by the retry budget; this only stops a runaway loop filling memory.
local ATTEMPTS_KEPT = 1000

local function okey(k) return ARGV[2] .. k .. ARGV[3] end
local function ekey(k) return ARGV[4] .. k .. ARGV[5] end
local function akey(k) return ARGV[6] .. k .. ARGV[7] end

local function event(k, ev)
  ev.at = NOW
  local ek = ekey(k)
  redis.call('RPUSH', ek, cjson.encode(ev))
  redis.call('LTRIM', ek, -EVENTS_KEPT, -1)
end

local function counter(field)
  redis.call('HINCRBY', K_COUNTERS, field, 1)
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

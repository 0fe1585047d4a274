-- begin_batch: lock and begin the delivery of every order of one message, in one call.
-- ARGV 10 task id, 11 worker, 12 max unfinished deliveries, 13/14 head/tail of the lock key
-- around the encoded order key,
-- 15 lock ttl (ms), 16 due time for an order whose lock another worker holds, 17 how many more
-- PENDING orders to take on (0: none), 18 token prefix for those, 19.. pairs of (order key,
-- lock token) from the message.
-- Per message order, in order: `SET NX PX` the lock with the token; taken elsewhere ->
-- reschedule_one (no attempt spent) and {'locked'}. Otherwise begin_one; the lock is kept only
-- for 'proceed' and 'crash_loop' (the caller releases it through finish_batch) and dropped at
-- once for the rest. Returns one row per message order: {action, HGETALL of the entry} for
-- 'proceed' and 'crash_loop', {action, {'state', state}} for 'nothing_to_do' and 'not_due',
-- {'unknown'} without an entry.
-- In a message naming more than one order, a suspect (see `unfinished`) that has not reached the
-- crash-loop bound is left untouched and answered {'isolate'}: the caller publishes it alone, so
-- a redelivered message (a whole container killed, its locks expired) never re-forms the batch
-- that died with it (reliability #11). At the bound it is claimed (crash_loop: dead-lettered).
-- Then, unless a message order is a suspect, up to ARGV[17] of the oldest
-- PENDING orders that are not suspects (their own messages are still queued) are taken on the
-- same way with tokens prefix:1, prefix:2, ...; only those begun are returned, as
-- {action, HGETALL, order key, token}, after the message's rows. A PENDING order whose lock is
-- held elsewhere is skipped untouched. Their own messages later find them done or in flight.
-- Repeat-safe for the message's orders: a lock that already holds the token given for it was
-- taken by this same call, run before (redis-py sends a command again when a failover cut its
-- reply off); the order is answered as that run began it, with no second delivery counted.
-- Its filler orders are answered again too (see `record` below).
local out = {}
local function lock_key(k) return ARGV[13] .. enc(k) .. ARGV[14] end
local function claimed_before(k, token)
  if redis.call('GET', lock_key(k)) ~= token then return nil end
  local entry = redis.call('HGETALL', okey(k))
  if redis.call('HGET', okey(k), 'state') == 'submitting' then return {'proceed', entry} end
  return {'crash_loop', entry}
end
local function claim(k, token)
  local lk = lock_key(k)
  if not redis.call('SET', lk, token, 'NX', 'PX', ARGV[15]) then return nil end
  local action = begin_one(k, ARGV[10], ARGV[11], ARGV[12])
  if action == 'proceed' or action == 'crash_loop' then
    return {action, redis.call('HGETALL', okey(k))}
  end
  redis.call('DEL', lk)
  if action == 'unknown' then return {'unknown'} end
  return {action, {'state', redis.call('HGET', okey(k), 'state')}}
end
-- A suspect is an order with a delivery that ended without an outcome (a crash, an exception, a
-- soft time limit) since its budget was last reset: it may be a poison order, so no waiting
-- order is pulled into its batch, and it is never pulled in as filler (reliability #11:
-- innocent orders must not share its fate). `unfinished` is its count of such deliveries
-- (0: not a suspect), which is also what the crash-loop bound (ARGV 12) is measured on.
local function unfinished(k)
  local f = redis.call('HMGET', okey(k), 'd_started', 'd_finished')
  return tonumber(f[1] or '0') - tonumber(f[2] or '0')
end
local seen = {}
local any_suspect = false
local several = #ARGV - 18 > 2
for i = 19, #ARGV, 2 do
  local k = ARGV[i]
  seen[k] = true
  local row = claimed_before(k, ARGV[i + 1])
  local strikes = unfinished(k)
  if row ~= nil and row[1] == 'proceed' then
    strikes = strikes - 1  -- this call's own delivery, begun by its first run
  end
  if strikes > 0 then
    any_suspect = true
    -- (a row claimed before was not a suspect to isolate then, and is not now)
    if row == nil and several and strikes < tonumber(ARGV[12]) then row = {'isolate'} end
  end
  if row == nil then
    row = claim(k, ARGV[i + 1])
    if row == nil then
      reschedule_one(k, ARGV[16])
      row = {'locked'}
    end
  end
  out[#out + 1] = row
end
local fill = tonumber(ARGV[17])
if fill > 0 and not any_suspect then
  -- The fillers this call took, as (key, token) pairs, kept as long as their locks: a repeat of
  -- the call answers them again instead of taking others. The name sits in the lock namespace
  -- with a '%f' no encoded order key can hold (`enc` writes upper-case hex after '%').
  local record = ARGV[13] .. '%fill:' .. ARGV[18] .. ARGV[14]
  local taken = redis.call('LRANGE', record, 0, -1)
  if #taken > 0 then
    for j = 1, #taken, 2 do
      local row = claimed_before(taken[j], taken[j + 1])
      if row ~= nil then
        row[3] = taken[j]
        row[4] = taken[j + 1]
        out[#out + 1] = row
      end
    end
  else
    local n = 0
    for _, k in ipairs(redis.call('ZRANGE', IDX['pending'], 0, fill - 1)) do
      if not seen[k] and unfinished(k) == 0 then
        n = n + 1
        local token = ARGV[18] .. ':' .. n
        local row = claim(k, token)
        if row ~= nil and (row[1] == 'proceed' or row[1] == 'crash_loop') then
          row[3] = k
          row[4] = token
          out[#out + 1] = row
          redis.call('RPUSH', record, k, token)
        end
      end
    end
    if n > 0 then redis.call('PEXPIRE', record, ARGV[15]) end
  end
end
return out

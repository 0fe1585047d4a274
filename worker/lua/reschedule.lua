-- reschedule: ARGV 10 due at. The message's order is locked by another worker: bring the order
-- back later without spending an attempt. PENDING -> RETRY_WAIT; RETRY_WAIT keeps the earlier
-- due time. SUBMITTING is left alone (the lock holder re-reads the version after submitting and
-- re-publishes a newer one; the sweeper covers a holder that died), and so is a final state.
-- Returns 1 when the order is (still) scheduled, else 0.
local k = ARGV[9]
local ok = okey(k)
local state = redis.call('HGET', ok, 'state')
if state == 'pending' then
  redis.call('ZADD', K_RETRY, tonumber(ARGV[10]), k)
  redis.call('HSET', ok, 'next_attempt_at', ARGV[10])
  set_state(k, state, 'retry_wait')
  event(k, {type = 'rescheduled', due_at = tonumber(ARGV[10]), why = 'locked'})
  return 1
end
if state == 'retry_wait' then
  redis.call('ZADD', K_RETRY, 'LT', tonumber(ARGV[10]), k)
  local due = redis.call('ZSCORE', K_RETRY, k)
  redis.call('HSET', ok, 'next_attempt_at', due)
  return 1
end
return 0

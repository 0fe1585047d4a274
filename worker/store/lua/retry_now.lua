-- retry_now (`jetti-relay order retry`, the console): an operator asks for an order to be tried
-- again at once. ARGV 10 the actor (who asked; on the order's timeline).
-- A RETRY_WAIT order becomes due now (retry schedule score and next_attempt_at = NOW) and stays
-- RETRY_WAIT: the retry pump publishes it on its next pass, so nothing is lost if the caller
-- stops right after, and no publisher is needed here. A PENDING order's message is queued or
-- lost: its state_since is refreshed (the sweeper counts from the last publish) and the caller
-- publishes the key. Nothing else is touched: the attempt budget and the deadline stay.
-- Returns worker.core.states.RetryNowReply: 0 missing, 1 due, 2 republish, 3 in flight
-- (SUBMITTING), 4 settled, 5 dead (replay the dead letter instead).
local k = ARGV[9]
local ok = okey(k)
local f = redis.call('HMGET', ok, 'state', 'next_attempt_at')
local state = f[1]
if not state then return 0 end
if state == 'submitting' then return 3 end
if state == 'dead' then return 5 end
if SETTLED[state] then return 4 end
if state == 'retry_wait' then
  redis.call('ZADD', K_RETRY, NOW, k)
  redis.call('HSET', ok, 'next_attempt_at', NOW_S)
  event(k, {type = 'retry_now', actor = ARGV[10], previous_due_at = tonumber(f[2] or '')})
  return 1
end
-- pending
redis.call('ZADD', IDX[state], NOW, k)
redis.call('HSET', ok, 'state_since', NOW_S)
event(k, {type = 'retry_now', actor = ARGV[10], republish = true})
return 2

-- discard (`jetti-relay order discard`, the console): an operator gives up on an order that is
-- still waiting (PENDING or RETRY_WAIT). ARGV 10 the actor, 11 the operator's reason text.
-- It becomes DEAD with reason 'discarded', out of the retry schedule, through the worker's own
-- dead_one; the dead-letter entry is the caller's (Ledger.discard writes it right after, and a
-- rerun on an order already discarded writes it again if it is missing).
-- A message still queued for it finds it DEAD and does nothing; `dlq replay` re-arms it.
-- Returns {reply, HGETALL of the order} (the raw order and source for the dead letter), reply
-- as worker.core.states.DiscardReply: 0 missing, 1 discarded, 2 already discarded, 3 in flight
-- (SUBMITTING), 4 settled, 5 dead for another reason.
local k = ARGV[9]
local ok = okey(k)
local f = redis.call('HMGET', ok, 'state', 'dead_reason')
local state = f[1]
if not state then return {0, {}} end
if state == 'submitting' then return {3, {}} end
if SETTLED[state] then return {4, {}} end
if state == 'dead' then
  if f[2] == 'discarded' then return {2, redis.call('HGETALL', ok)} end
  return {5, {}}
end
-- No version compare ('' ts and seq): the operator gives up on whatever version is stored.
dead_one(k, 'discarded', '', '', '', {actor = ARGV[10], note = ARGV[11], previous_state = state})
return {1, redis.call('HGETALL', ok)}

-- purge_dead: delete the entry of order ARGV[9] if it is DEAD (its dead letter was purged:
-- reliability review #17, DEAD entries are never shed), with its events, attempts and index
-- memberships. An order that left DEAD (replayed, a newer version) is left alone.
-- Returns 1 when deleted, else 0.
local k = ARGV[9]
local ok = okey(k)
if redis.call('HGET', ok, 'state') ~= 'dead' then return 0 end
redis.call('ZREM', IDX['dead'], k)
redis.call('ZREM', K_RETRY, k)
redis.call('ZREM', K_SHED, k)
redis.call('ZREM', K_ENQ, k)
redis.call('ZREM', K_TOMB, k)
redis.call('DEL', ok, ekey(k), akey(k))
forget(k)
return 1

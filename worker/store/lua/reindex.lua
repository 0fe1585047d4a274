-- reindex (`jetti-relay reindex`): put orders recorded before the order-key and received indexes
-- existed into both. ARGV 10.. order keys. An order whose hash is gone (purged meanwhile) is
-- skipped, so a reindex racing a purge never indexes a ghost. ZADD NX: a key already indexed
-- keeps its score (a newer received time is never lowered); the received score of a missing
-- one is the hash's enqueued_at (when its latest version was enqueued).
-- Returns {order-key index entries added, received index entries added}.
local added_keys, added_recv = 0, 0
for i = 10, #ARGV do
  local k = ARGV[i]
  local ok = okey(k)
  if redis.call('EXISTS', ok) == 1 then
    added_keys = added_keys + redis.call('ZADD', K_KEYIDX, 'NX', 0, k)
    local at = redis.call('HGET', ok, 'enqueued_at') or redis.call('HGET', ok, 'first_seen_at')
    added_recv = added_recv + redis.call('ZADD', K_RECV, 'NX', tonumber(at or '0') or 0, k)
  end
end
return {added_keys, added_recv}

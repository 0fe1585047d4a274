-- shed: ARGV 10 cutoff (settled before it lose their body), 11 tombstone ttl (s), 12 limit.
-- A shed order keeps only its tombstone (TOMBSTONE_FIELDS): what recognises a late duplicate or
-- stale copy (version, raw hash, state), what an update must compare with (payload hash, line
-- ids, the version sent, sale id) and how it was cancelled. Its raw body, transient fields and
-- its events and attempts lists go (reliability review #17: about 2 KB per order for the whole
-- tombstone lifetime otherwise). Returns the number of bodies shed.
local TOMBSTONE_FIELDS = {
  state = true, state_since = true, v_ts = true, v_seq = true, raw_hash = true,
  payload_hash = true, line_ids = true, sale_id = true, sent_v_ts = true, sent_v_seq = true,
  submitted_at = true, first_seen_at = true, source = true, stale = true, shed_at = true,
  cancelled_v_ts = true, cancelled_v_seq = true, cancelled_via = true, cancel = true, after_cancel = true,
}
local due = redis.call('ZRANGEBYSCORE', K_SHED, '-inf', tonumber(ARGV[10]), 'LIMIT', 0, tonumber(ARGV[12]))
local n = 0
for _, k in ipairs(due) do
  redis.call('ZREM', K_SHED, k)
  local ok = okey(k)
  local state = redis.call('HGET', ok, 'state')
  if SETTLED[state] then
    local drop = {}
    for _, field in ipairs(redis.call('HKEYS', ok)) do
      if not TOMBSTONE_FIELDS[field] then drop[#drop + 1] = field end
    end
    if #drop > 0 then redis.call('HDEL', ok, unpack(drop)) end
    redis.call('HSET', ok, 'shed_at', NOW_S)
    redis.call('DEL', ekey(k), akey(k))
    redis.call('ZADD', K_TOMB, NOW + tonumber(ARGV[11]), k)
    n = n + 1
  end
end
return n

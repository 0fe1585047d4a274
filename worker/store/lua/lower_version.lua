-- lower_version (`jetti-relay migrate-keys`): a stored version timestamp above ARGV 10 (ms, the
-- far-future bound) is lowered to ARGV 11 (ms, the migration's clock), so that the real updates
-- that follow win again instead of being counted stale. Returns the old timestamp when lowered,
-- '' otherwise (no entry, or a version within the bound).
local k = ARGV[9]
local ok = okey(k)
local cur = redis.call('HGET', ok, 'v_ts')
if not cur or tonumber(cur) <= tonumber(ARGV[10]) then return '' end
redis.call('HSET', ok, 'v_ts', ARGV[11])
event(k, {type = 'version_lowered', from_ts_ms = tonumber(cur), ts_ms = tonumber(ARGV[11]),
          why = 'far_future'})
return cur

-- migrate_rename (`jetti-relay migrate-keys`, worker/store/migrate.py): move per-order names.
-- KEYS: pairs (old name, new name); ARGV[1] '1' = dry run; ARGV[1 + i]: the type pair i must
-- have ('hash', 'list', 'string'); last ARGV: list items per RPUSH
-- when merging (migrate.py _MERGE_SLICE). One answer per pair:
--   absent   nothing at the old name (never written), or moved already (the new name has the
--            right type and the old one now holds another order's structure)
--   ok       old and new are one name (the key needs no encoding) and it has the right type
--   foreign  the old name holds another type: it is another order's (a collision), left alone
--   renamed  moved to the new name
--   merged   a list at both names: one list, the old entries first
--   conflict a hash or string at both names: left as is for an engineer
local dry = ARGV[1] == '1'
local out = {}
for i = 1, #KEYS, 2 do
  local old, new, want = KEYS[i], KEYS[i + 1], ARGV[(i + 1) / 2 + 1]
  local t = redis.call('TYPE', old)['ok']
  local r
  if t == 'none' then
    r = 'absent'
  elseif t ~= want and old ~= new and redis.call('TYPE', new)['ok'] == want then
    -- Moved already; the old name is now another order's (X's events where X:events was).
    r = 'absent'
  elseif t ~= want then
    r = 'foreign'
  elseif old == new then
    r = 'ok'
  else
    local nt = redis.call('TYPE', new)['ok']
    if nt == 'none' then
      r = 'renamed'
      if not dry then redis.call('RENAME', old, new) end
    elseif nt == 'list' and want == 'list' then
      r = 'merged'
      if not dry then
        local items = redis.call('LRANGE', new, 0, -1)
        local step = tonumber(ARGV[#ARGV])
        for j = 1, #items, step do
          redis.call('RPUSH', old, unpack(items, j, math.min(j + step - 1, #items)))
        end
        redis.call('RENAME', old, new)
      end
    else
      r = 'conflict'
    end
  end
  out[#out + 1] = r
end
return out

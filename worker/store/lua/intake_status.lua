-- The entry ids the intake's metrics need, without moving an entry's body to the client (an
-- order may be a megabyte): KEYS[1] the intake stream, KEYS[2] its rejects stream.
-- ARGV[1]: where the group's unread entries start, as XRANGE takes it ("(" .. last-delivered-id,
-- or "-" when there is no group). ARGV[2]: how many unread entries to count at most (0: none;
-- the caller counts only where XINFO GROUPS gives no lag, Redis 6.2).
-- Reply: {first unread id or nil, newest reject id or nil, unread entries counted}.
local first = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', 1)
local newest = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local cap = tonumber(ARGV[2])
local counted = 0
local start = ARGV[1]
-- Pages keep the script's memory small; the cap bounds the time it holds the server.
while counted < cap do
  local rows = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', math.min(1000, cap - counted))
  if #rows == 0 then
    break
  end
  counted = counted + #rows
  start = '(' .. rows[#rows][1]
end
return {first[1] and first[1][1] or false, newest[1] and newest[1][1] or false, counted}

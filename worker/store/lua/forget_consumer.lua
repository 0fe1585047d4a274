-- Remove consumer ARGV[2] from group ARGV[1] of the intake stream KEYS[1], only when it holds no
-- pending entry: checked and removed in one step, so a consumer that read meanwhile keeps its
-- entries (XGROUP DELCONSUMER drops a consumer's pending entries with it).
-- Reply: 1 removed, 0 kept.
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then
    return 0
end
return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2]) >= 0 and 1 or 0

-- token_release: deletes the key only if it still holds the caller's token. KEYS: the lease or
-- lock. ARGV: token. Returns 1 when deleted.
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0

-- schedule_retry: ARGV 10 due at (epoch s), 11 '1' to spend an attempt, 12 attempt JSON or ''.
-- Returns 1, or 0 without an entry.
return retry_one(ARGV[9], ARGV[10], ARGV[11], ARGV[12])

-- mark_dead: ARGV 10 reason, 11 attempt JSON or ''. Returns 1, or 0 without an entry.
return dead_one(ARGV[9], ARGV[10], ARGV[11])

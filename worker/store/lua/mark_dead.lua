-- mark_dead: ARGV 10 reason, 11 attempt JSON or '', 12/13 the version given up on (ts ms, seq;
-- '' = no compare). Returns 1 (DEAD), 2 (a newer version is PENDING instead: re-publish it), or 0
-- without an entry.
return dead_one(ARGV[9], ARGV[10], ARGV[11], ARGV[12], ARGV[13])

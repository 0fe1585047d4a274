-- reschedule: ARGV 10 due at. The message's order is locked by another worker: bring the order
-- back later without spending an attempt (see reschedule_one in the prelude).
-- Returns 1 when the order is (still) scheduled, else 0.
return reschedule_one(ARGV[9], ARGV[10])

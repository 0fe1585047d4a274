-- record: compare-and-set the version of one order. ARGV 10 raw, 11 raw hash, 12 ts_ms ('' = no
-- updated_at), 13 source, 14 cancel ('1' = cancelled_at set).
-- Returns {outcome, publish (0/1), ts_ms, seq} of the version stored after the call
-- (record_one in the prelude; record_batch runs the same for many orders).
return record_one(ARGV[9], ARGV[10], ARGV[11], ARGV[12], ARGV[13], ARGV[14])

-- record: compare-and-set the version of one order. ARGV 10 raw, 11 raw hash, 12 ts_ms, 13 source.
-- Returns {outcome, publish (0/1), ts_ms, seq} of the version stored after the call
-- (record_one in the prelude; record_batch runs the same for many orders).
return record_one(ARGV[9], ARGV[10], ARGV[11], ARGV[12], ARGV[13])

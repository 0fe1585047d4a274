-- mark_submitted: ARGV 10 sent ts_ms, 11 sent seq, 12 payload hash, 13 line ids (JSON array),
-- 14 sale id or '', 15 attempt JSON or ''. Returns 1 when a newer version arrived meanwhile (the
-- order is PENDING again and must be re-published), 0 when it is SUBMITTED, -1 without an entry.
return submitted_one(ARGV[9], ARGV[10], ARGV[11], ARGV[12], ARGV[13], ARGV[14], ARGV[15])

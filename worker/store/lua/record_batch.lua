-- record_batch: record_one for many orders in one call (producers). ARGV 10.. groups of seven:
-- order key, raw, raw hash, ts_ms ('' = no updated_at), source, cancel ('1' = cancelled_at set),
-- trace (a W3C traceparent, or '').
-- Items for the same key are applied in order.
-- Returns one {outcome, publish, ts_ms, seq} per item.
local out = {}
for i = 10, #ARGV, 7 do
  out[#out + 1] = record_one(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4],
    ARGV[i + 5], ARGV[i + 6])
end
return out

-- record_batch: record_one for many orders in one call (producers). ARGV 10.. groups of five:
-- order key, raw, raw hash, ts_ms, source. Items for the same key are applied in order.
-- Returns one {outcome, publish, ts_ms, seq} per item.
local out = {}
for i = 10, #ARGV, 5 do
  out[#out + 1] = record_one(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4])
end
return out

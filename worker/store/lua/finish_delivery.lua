-- finish_delivery: the finish marker of a delivery that began. Returns 1, or 0 without an entry.
return finish_one(ARGV[9])

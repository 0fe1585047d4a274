-- finish_batch: the outcomes of one message's orders, in one call. ARGV 10/11 head/tail of the
-- lock key, 12 a JSON array with one object per order:
--   k       order key
--   op      'submitted' | 'retry' | 'dead' | '' (no outcome to write)
--   ...     the op's fields (strings): submitted: ts, seq, hash, lines, sale, attempt;
--           retry: due, spend, attempt; dead: reason, attempt, ts, seq (the version given
--           up on; '' = no compare)
--   fin     '1' to write the delivery's finish marker (after the outcome)
--   t       the lock token to release last ('' for none; only the holder's token frees it)
-- Returns one integer per order: the op's answer (submitted_one, retry_one, dead_one), 0 for '';
-- worker/store/ledger_schema.py decode_finish names them (worker.core.states SubmitReply, ...).
--
-- Repeat-safe per delivery: an order's outcome written under lock token `t` stores the token and
-- its answer in the order hash (fin_token, fin_reply). The same call again (redis-py's retry, or
-- the ledger's, after a failover cut the reply off) finds the token, writes nothing and answers
-- as the first run did, so no attempt, event, counter or finish marker is counted twice.
local out = {}
for i, o in ipairs(cjson.decode(ARGV[12])) do
  local k = o.k
  local ok = okey(k)
  local r = 0
  local f = {}
  if o.t ~= '' then f = redis.call('HMGET', ok, 'fin_token', 'fin_reply') end
  if o.t ~= '' and f[1] == o.t then
    r = tonumber(f[2])
  else
    if o.op == 'submitted' then
      r = submitted_one(k, o.ts, o.seq, o.hash, o.lines, o.sale, o.attempt)
    elseif o.op == 'retry' then
      r = retry_one(k, o.due, o.spend, o.attempt)
    elseif o.op == 'dead' then
      r = dead_one(k, o.reason, o.attempt, o.ts, o.seq)
    end
    if o.fin == '1' then finish_one(k) end
    if o.t ~= '' and (o.op ~= '' or o.fin == '1') and redis.call('EXISTS', ok) == 1 then
      redis.call('HSET', ok, 'fin_token', o.t, 'fin_reply', r)
    end
  end
  if o.t ~= '' then
    local lk = ARGV[10] .. enc(k) .. ARGV[11]
    if redis.call('GET', lk) == o.t then redis.call('DEL', lk) end
  end
  out[i] = r
end
return out

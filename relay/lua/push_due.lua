-- push_due.lua: moves the retries that are due from a shard's delay set onto its push queue (push_queue.c calls it
-- every few hundred ms). Atomic, so with several relays each retry is queued once; once queued it is an ordinary job,
-- taken by one relay and reclaimed from a relay that dies with it.
--
-- KEYS[1] cr:pushretry:<n> (zset: score = due time in ms, member = msgpack [t, id, host, e, n, dev, try])
-- KEYS[2] cr:pushq:<n>
-- ARGV[1] now (ms), ARGV[2] at most this many, ARGV[3] n (the notice on cr:pushn when anything was queued)
-- Returns the number queued.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do
  local ok, j = pcall(cmsgpack.unpack, m)
  if ok and type(j) == 'table' and #j == 7 then
    redis.call('XADD', KEYS[2], '*', 't', j[1], 'id', j[2], 'host', j[3], 'e', j[4], 'n', j[5], 'dev', j[6], 'try', j[7])
  end
  redis.call('ZREM', KEYS[1], m)
end
if #due > 0 then redis.call('PUBLISH', 'cr:pushn', ARGV[3]) end
return #due

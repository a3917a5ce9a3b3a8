-- action.lua: actions from phones to hosts, each step one atomic call (actions.c). ARGV[1] picks the step.
--
-- submit: KEYS[1] cr:{T}:aid:<aid>, KEYS[2] cr:{T}:s:<sid>
--         ARGV 'submit', key prefix 'cr:{T}:', aid, sid, envelope (by stamped), live channel 'cr:live:{T}', max queued,
--              seconds the aid is remembered
--   -> {'dup', stream id}          the aid was seen before (within the TTL): nothing queued
--   -> {'nosession'}               the team has no such session
--   -> {'full', host}              the host already has max queued actions waiting
--   -> {'queued', stream id, host} appended to cr:{T}:act:<host>, idempotency key set, relays notified
-- The host's stream key is made here from the session's host; it shares the {T} hash tag (and slot) of KEYS.
--
-- ack:    KEYS[1] cr:{T}:hcur, KEYS[2] cr:{T}:act:<host>
--         ARGV 'ack', host, cursor, first id after cursor (both canonical "ms-seq", made by actions.c)
--   -> {'ok', stored cursor}       moved forward (or kept: a cursor never goes back); confirmed actions trimmed
--   -> {'ahead', last id}          the cursor is past the last action ever queued for the host

-- @include streamid (cmp: compares two canonical stream ids)

if ARGV[1] == 'submit' then
  local seen = redis.call('GET', KEYS[1])
  if seen then return {'dup', seen} end
  local host = redis.call('HGET', KEYS[2], 'host')
  if not host or host == '' then return {'nosession'} end
  local key = ARGV[2] .. 'act:' .. host
  if redis.call('XLEN', key) >= tonumber(ARGV[7]) then return {'full', host} end
  local id = redis.call('XADD', key, '*', 'sid', ARGV[4], 'aid', ARGV[3], 'a', ARGV[5])
  redis.call('SET', KEYS[1], id, 'EX', tonumber(ARGV[8]))
  redis.call('PUBLISH', ARGV[6], 'a' .. host)
  return {'queued', id, host}
end

if ARGV[1] == 'ack' then
  local host, cursor, trim_from = ARGV[2], ARGV[3], ARGV[4]
  local last = '0-0'
  if redis.call('EXISTS', KEYS[2]) == 1 then
    local info = redis.call('XINFO', 'STREAM', KEYS[2])
    for i = 1, #info, 2 do
      if info[i] == 'last-generated-id' then last = info[i + 1] end
    end
  end
  if cmp(cursor, last) > 0 then return {'ahead', last} end
  local cur = redis.call('HGET', KEYS[1], host)
  if cur and cmp(cursor, cur) <= 0 then return {'ok', cur} end
  redis.call('HSET', KEYS[1], host, cursor)
  redis.call('XTRIM', KEYS[2], 'MINID', trim_from)
  return {'ok', cursor}
end

return redis.error_reply('action.lua: unknown step ' .. tostring(ARGV[1]))

-- sessions.lua: the phone's read views of sessions, each one call (sessions.c). ARGV[1] picks the view.
--
-- list:   KEYS[1] cr:{T}:sessions
--         ARGV 'list', summary key prefix 'cr:{T}:s:', max sessions
--   -> {sid, host, name, idn, state, last_seq, needs_k, needs_seq, needs_rid, updated, sid, ...} newest first;
--      absent fields are nil. The summary keys are made here; they share the {T} hash tag (and slot) of KEYS[1].
--
-- events: KEYS[1] cr:{T}:s:<sid>, KEYS[2] cr:{T}:sx:<sid> (the session's index, see ingest.lua), KEYS[3] cr:{T}:ev
--         ARGV 'events', sid, after (canonical stream id, or '' for the start), limit, byte budget
--   -> {'nosession'}                      the team has no such session
--   -> {'ok', id1, host1, e1, id2, ...}   the session's events after `after` in stream order, at most limit, and no
--                                         more once their envelopes reach the byte budget (at least one)
-- Reading through the index (one entry per session per ingest batch, see ingest.lua) costs O(log n + limit + one
-- batch), whatever the size of the team's stream. Index entries older than the team stream's first entry (trimmed
-- events) are skipped by starting there.

-- @include streamid (cmp: compares two canonical stream ids)

if ARGV[1] == 'list' then
  local sids = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)
  local out = {}
  for _, sid in ipairs(sids) do
    local h = redis.call('HMGET', ARGV[2] .. sid, 'host', 'name', 'idn', 'state', 'last_seq', 'needs_k', 'needs_seq',
                         'needs_rid', 'updated')
    out[#out + 1] = sid
    for j = 1, 9 do out[#out + 1] = h[j] end
  end
  return out
end

if ARGV[1] == 'events' then
  local sid, after, limit, budget = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
  if redis.call('EXISTS', KEYS[1]) == 0 then return {'nosession'} end
  local head = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', 1)
  if #head == 0 or after == '18446744073709551615-18446744073709551615' then return {'ok'} end -- nothing can follow
  -- low: the ids wanted are above it (or at it, when lowin): after, or the team stream's first id if later
  local low, lowin = after, false
  if after == '' or cmp(after, head[1][1]) < 0 then low, lowin = head[1][1], true end
  local out, bytes, n = {'ok'}, 0, 0
  -- an entry's id is the greatest of its ids: the entries from low on hold every id above it, a few before it
  local start = (lowin and '' or '(') .. low
  while n < limit do
    local ents = redis.call('XRANGE', KEYS[2], start, '+', 'COUNT', 8)
    if #ents == 0 then break end
    for _, ent in ipairs(ents) do
      local f = ent[2]
      for j = 1, #f - 1, 2 do
        if f[j] == 'ids' then
          for id in string.gmatch(f[j + 1], '%S+') do
            local c = cmp(id, low)
            if c > 0 or (c == 0 and lowin) then
              local got = redis.call('XRANGE', KEYS[3], id, id)
              if #got == 1 then
                local g, h, e = got[1][2], nil, nil
                for k = 1, #g, 2 do
                  if g[k] == 'host' then h = g[k + 1] elseif g[k] == 'e' then e = g[k + 1] end
                end
                if h ~= nil and e ~= nil then
                  out[#out + 1] = id
                  out[#out + 1] = h
                  out[#out + 1] = e
                  n = n + 1
                  bytes = bytes + #e
                  if n >= limit or bytes >= budget then return out end
                end
              end
            end
          end
        end
      end
      start = '(' .. ent[1]
    end
  end
  return out
end

return redis.error_reply('sessions.lua: unknown view ' .. tostring(ARGV[1]))

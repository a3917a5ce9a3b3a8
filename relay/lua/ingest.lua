-- ingest.lua: one uplink batch of events from one host, stored atomically (ingest.c calls it once per batch).
--
-- KEYS[1] cr:{T}:seq  KEYS[2] cr:{T}:ev  KEYS[3] cr:{T}:sessions  KEYS[4] cr:pushq:<n> (the team's push queue)
-- then for the j-th distinct sid of the batch: KEYS[3 + 2j] cr:{T}:s:<sid> (summary hash) and KEYS[4 + 2j]
-- cr:{T}:sx:<sid> (the session's index: a stream of the ids of its events in cr:{T}:ev, one entry per batch: below)
-- ARGV[1] host id, ARGV[2] events.maxlen, ARGV[3] relay clock (ms), ARGV[4] live channel cr:live:{T},
-- ARGV[5] S (the number of distinct sids), ARGV[6 .. 5 + S] the sids, ARGV[6 + S] the team, ARGV[7 + S] n
-- then per event, in batch order: j (its sid's number, 1-based), seq (decimal, no leading zeros), e (the raw
-- envelope bytes), m: '0', or '1' (or '2': and push it: its pri is 2) followed by six more values for events that
-- change their session's summary:
--   k (the kind), name (new session name or ''), state (new state or ''),
--   needs ('s' set needs to {k, seq, rid} | 'c' clear them | '' keep), rid (the request id or ''),
--   idn (the envelope's identity or '')
-- Most events (agent.message, tool output) change no summary: four values each keep the script's argument
-- handling, which costs Redis about as much as the XADDs themselves, small.
--
-- Each event whose seq is above the last accepted one of its sid (cr:{T}:seq) is appended to cr:{T}:ev (fields host
-- and e: the envelope itself holds sid and seq) and the session's index, and folded into the session's summary. Any
-- other event is a duplicate: acknowledged, not stored, not published. A batch that stored anything publishes one
-- small notice 'e' on the live channel; relays holding live clients of the team then read the new entries with
-- XRANGE (live.c), so a team nobody watches costs nothing more, and a missed notice loses nothing.
-- Each stored event to push becomes a job on the team's push queue {t, id, host, e, n: the session's name} once the
-- summaries are written, and one notice <n> goes to cr:pushn for the relays' push workers (push.c).
-- Returns {stored, duplicates, sid1, last seq of sid1, sid2, ...}: every sid of the batch with the highest seq now
-- stored for it.
--
-- Why a per-session index: a session's page (GET /v1/sessions/{sid}/events, sessions.lua) read by filtering
-- cr:{T}:ev would cost O(team events) per request, copying every envelope of the team through Lua. The index makes
-- a page O(log n + limit). Its shape: a stream with ONE entry per session per batch, whose id is the last id the
-- batch stored for the session and whose field ids holds all of them ('id1 id2 ...', in order). One XADD per
-- session per batch and not per event, because each redis.call from Lua costs about what the command does (one entry
-- per event, or a sorted set of padded ids, measured slower); a reader wanting the ids after X reads the entries
-- after X (an entry's id is its greatest) and skips the few at or before X. It is trimmed here (whole nodes) to the
-- team stream's first id for the sessions a batch touches; an idle session keeps its stale entries until it is
-- written again, and readers skip them by starting at that first id.

local host, maxlen, now, channel = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

-- a > b for decimal strings without leading zeros (seqs are uint64: beyond a Lua number's exact range)
local function seq_gt(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end

local nsids = tonumber(ARGV[5])
local sids = {}    -- j -> sid
local last = {}    -- j -> last accepted seq
local sums = {}    -- j -> what the batch changes: ix (its ids, for the index), id, name, state, needs ...
local stored, dups = 0, 0
for j = 1, nsids do
  sids[j] = ARGV[5 + j]
  last[j] = redis.call('HGET', KEYS[1], sids[j]) or '0'
end

local team, shard = ARGV[6 + nsids], ARGV[7 + nsids]
local pushes = {} -- {j, id, e} of the stored events to push
local i, n = 8 + nsids, #ARGV
while i <= n do
  local j, seq, e, m = tonumber(ARGV[i]), ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if seq_gt(seq, last[j]) then
    local id = redis.call('XADD', KEYS[2], '*', 'host', host, 'e', e)
    last[j] = seq
    stored = stored + 1
    local s = sums[j]
    if s == nil then
      s = {ix = {}}
      sums[j] = s
    end
    s.ix[#s.ix + 1] = id
    s.id = id
    if m == '2' then pushes[#pushes + 1] = {j, id, e} end
    if m ~= '0' then
      local name, state, needs, idn = ARGV[i + 5], ARGV[i + 6], ARGV[i + 7], ARGV[i + 9]
      if name ~= '' then s.name = name end
      if state ~= '' then s.state = state end
      if idn ~= '' then s.idn = idn end
      if ARGV[i + 4] == 'action.applied' then
        -- every applied action is in the team's audit trail (DESIGN.md §8), written with the event or not at all
        -- (the key shares the team's slot, like KEYS; it is not among them, to keep the common batch small)
        redis.call('XADD', 'cr:{' .. team .. '}:audit', 'MAXLEN', '~', 1000000, '*', 't', now, 'a', 'host:' .. host,
                   'i', idn, 'o', 'action.applied', 'k', sids[j] .. ':' .. seq, 'r', 'applied')
      end
      if needs == 's' then
        s.needs, s.needs_k, s.needs_seq, s.needs_rid = 's', ARGV[i + 4], seq, ARGV[i + 8]
      elseif needs == 'c' then
        s.needs = 'c'
      end
    end
  else
    dups = dups + 1
  end
  i = i + (m == '0' and 4 or 10)
end

if stored > 0 then redis.call('PUBLISH', channel, 'e') end

-- trimmed once per batch rather than by each XADD (the same approximate MAXLEN, fewer arguments per event)
if stored > 0 then redis.call('XTRIM', KEYS[2], 'MAXLEN', '~', maxlen) end

local first = nil
if stored > 0 then
  local head = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
  if #head > 0 then first = head[1][1] end
end

local out = {stored, dups}
for j = 1, nsids do
  local s = sums[j]
  if s ~= nil then
    local key = KEYS[3 + 2 * j]
    local f = {'host', host, 'last_seq', last[j], 'last_id', s.id, 'updated', now}
    local gone = {}
    if s.name then f[#f + 1] = 'name'; f[#f + 1] = s.name end
    if s.state then f[#f + 1] = 'state'; f[#f + 1] = s.state end
    if s.idn then f[#f + 1] = 'idn'; f[#f + 1] = s.idn end
    if s.needs == 's' then
      f[#f + 1] = 'needs_k'; f[#f + 1] = s.needs_k
      f[#f + 1] = 'needs_seq'; f[#f + 1] = s.needs_seq
      if s.needs_rid ~= '' then f[#f + 1] = 'needs_rid'; f[#f + 1] = s.needs_rid else gone[1] = 'needs_rid' end
    elseif s.needs == 'c' then
      gone = {'needs_k', 'needs_seq', 'needs_rid'}
    end
    redis.call('HSET', KEYS[1], sids[j], last[j])
    redis.call('HSET', key, unpack(f))
    if #gone > 0 then redis.call('HDEL', key, unpack(gone)) end
    redis.call('ZADD', KEYS[3], now, sids[j])
    -- pcall: an index that cannot take this id (a stream recreated under a clock gone back, or a key of another type)
    -- must not abort the batch half-way; the events are stored and published all the same
    redis.pcall('XADD', KEYS[4 + 2 * j], s.id, 'ids', table.concat(s.ix, ' '))
    -- the index need not outlive the events: drop what the team stream has trimmed (whole nodes only, cheap)
    if first ~= nil then redis.call('XTRIM', KEYS[4 + 2 * j], 'MINID', '~', first) end
  end
  out[#out + 1] = sids[j]
  out[#out + 1] = last[j]
end

if #pushes > 0 then
  for _, p in ipairs(pushes) do
    local name = redis.call('HGET', KEYS[3 + 2 * p[1]], 'name') or ''
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', 100000, '*', 't', team, 'id', p[2], 'host', host, 'e', p[3], 'n', name)
  end
  redis.call('PUBLISH', 'cr:pushn', shard)
end
return out

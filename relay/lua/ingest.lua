-- ingest.lua: one uplink batch of events from one host, stored atomically (ingest.c calls it once per batch).
--
-- KEYS[1] cr:{T}:seq  KEYS[2] cr:{T}:ev  KEYS[3] cr:{T}:sessions
-- then for each distinct sid of the batch: cr:{T}:s:<sid> (summary hash) and cr:{T}:sx:<sid> (the session's index:
-- a stream of the ids of its events in cr:{T}:ev, one entry per batch: see below)
-- ARGV[1] host id, ARGV[2] events.maxlen, ARGV[3] relay clock (ms), ARGV[4] live channel cr:live:{T}
-- then 10 values per event, in batch order:
--   kidx  index in KEYS of the session's summary hash (its index is kidx + 1)
--   sid, seq (decimal, no leading zeros), k (the kind), e (the raw envelope bytes)
--   name  new session name or ''           state  new state or ''
--   needs 's' set needs to {k, seq, rid} | 'c' clear them | '' keep      rid  the request id or ''
--   idn   the envelope's identity or ''
--
-- Each event whose seq is above the last accepted one of its sid (cr:{T}:seq) is appended to cr:{T}:ev and the
-- session's index, folded into the session's summary, and published on the live channel as a phone frame
-- msgpack {k:"ev", id, host, e} with the envelope's bytes embedded verbatim (one notice per batch: 'e' and the
-- frames concatenated). Any other event is a duplicate:
-- acknowledged, not stored, not published.
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

-- the msgpack str header of s, then s (our strings are ids and stream ids: far below 64 KiB)
local function mp_str(s)
  local n = #s
  if n < 32 then return string.char(0xa0 + n) .. s end
  if n < 256 then return string.char(0xd9, n) .. s end
  return string.char(0xda, math.floor(n / 256), n % 256) .. s
end

-- {k:"ev", id:..., host:..., e:...}: a fixmap of 4; the envelope follows its key as it came
local frame_head = string.char(0x84) .. mp_str('k') .. mp_str('ev') .. mp_str('id')
local frame_host = mp_str('host') .. mp_str(host) .. mp_str('e')

local last = {}    -- sid -> last accepted seq
local order = {}   -- sids in batch order
local sums = {}    -- sid -> what the batch changes: ix (its ids, for the index), kidx, id, name, state, needs ...
local stored, dups = 0, 0
local frames = {} -- the live frames of the batch, published together at the end

for i = 5, #ARGV, 10 do
  local sid, seq = ARGV[i + 1], ARGV[i + 2]
  local cur = last[sid]
  if cur == nil then
    cur = redis.call('HGET', KEYS[1], sid) or '0'
    last[sid] = cur
    order[#order + 1] = sid
  end
  if seq_gt(seq, cur) then
    local kidx, e = tonumber(ARGV[i]), ARGV[i + 4]
    local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', 'host', host, 'sid', sid, 'seq', seq, 'e', e)
    frames[#frames + 1] = frame_head .. mp_str(id) .. frame_host .. e
    last[sid] = seq
    stored = stored + 1
    local s = sums[sid]
    if s == nil then
      s = {kidx = kidx, ix = {}}
      sums[sid] = s
    end
    s.ix[#s.ix + 1] = id
    s.id = id
    local name, state, needs, idn = ARGV[i + 5], ARGV[i + 6], ARGV[i + 7], ARGV[i + 9]
    if name ~= '' then s.name = name end
    if state ~= '' then s.state = state end
    if idn ~= '' then s.idn = idn end
    if needs == 's' then
      s.needs, s.needs_k, s.needs_seq, s.needs_rid = 's', ARGV[i + 3], seq, ARGV[i + 8]
    elseif needs == 'c' then
      s.needs = 'c'
    end
  else
    dups = dups + 1
  end
end

-- one PUBLISH per batch: 'e' then the frames concatenated (relays split them by msgpack framing); each PUBLISH
-- from Lua costs about what an XADD does, so one per event would cost a third of the script
if #frames > 0 then redis.call('PUBLISH', channel, 'e' .. table.concat(frames)) end

local first = nil
if stored > 0 then
  local head = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
  if #head > 0 then first = head[1][1] end
end

local out = {stored, dups}
for _, sid in ipairs(order) do
  local s = sums[sid]
  if s ~= nil then
    local key = KEYS[s.kidx]
    local f = {'host', host, 'last_seq', last[sid], 'last_id', s.id, 'updated', now}
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
    redis.call('HSET', KEYS[1], sid, last[sid])
    redis.call('HSET', key, unpack(f))
    if #gone > 0 then redis.call('HDEL', key, unpack(gone)) end
    redis.call('ZADD', KEYS[3], now, sid)
    -- pcall: an index that cannot take this id (a stream recreated under a clock gone back, or a key of another type)
    -- must not abort the batch half-way; the events are stored and published all the same
    redis.pcall('XADD', KEYS[s.kidx + 1], s.id, 'ids', table.concat(s.ix, ' '))
    -- the index need not outlive the events: drop what the team stream has trimmed (whole nodes only, cheap)
    if first ~= nil then redis.call('XTRIM', KEYS[s.kidx + 1], 'MINID', '~', first) end
  end
  out[#out + 1] = sid
  out[#out + 1] = last[sid]
end
return out

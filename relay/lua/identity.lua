-- identity.lua: identities, their vaults, inboxes and the audit trail (identity.c, inbound.c), each step one atomic
-- call, so that an operation and its audit record are written together or not at all (DESIGN.md §8). ARGV[1]
-- picks the step. Audit records: XADD cr:{T}:audit MAXLEN ~ N with fields t (ms), a (actor), i (identity),
-- o (operation), k (key name or ''), r (outcome); never a secret value.
--
-- Routes to identities live outside the team's slot (cr:mail:<addr>, cr:sms:<number>, cr:sms:pool): they are how a
-- mail or an SMS finds its team. Like claim.lua, the create step is therefore not Redis Cluster-safe.

local function audit(key, maxlen, t, actor, idn, op, k, outcome)
  redis.call('XADD', key, 'MAXLEN', '~', maxlen, '*', 't', t, 'a', actor, 'i', idn, 'o', op, 'k', k, 'r', outcome)
end

local step = ARGV[1]

-- create: KEYS[1] cr:{T}:id:<name>, KEYS[2] cr:mail:<addr>, KEYS[3] cr:sms:pool, KEYS[4] cr:{T}:audit,
--         KEYS[5] cr:{T}:ids
--   ARGV 'create', team, name, id, email, pk, wsk, wvk, host, now, actor, audit maxlen
--   -> {'ok', phone}         made: the address routed, a number taken from the pool when one is free ('' if none)
--   -> {'exists', id}        the team already has an identity of that name
--   -> {'addr_taken'}        another identity (of any team) holds the address
if step == 'create' then
  local team, name, id, email, pk, wsk, wvk, host, now, actor, maxlen =
    ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12]
  if redis.call('EXISTS', KEYS[1]) == 1 then return {'exists', redis.call('HGET', KEYS[1], 'id') or ''} end
  if redis.call('EXISTS', KEYS[2]) == 1 then return {'addr_taken'} end
  local phone = redis.call('SPOP', KEYS[3]) or ''
  redis.call('HSET', KEYS[1], 'id', id, 'name', name, 'email', email, 'phone', phone, 'pk', pk, 'wsk', wsk,
             'wvk', wvk, 'host', host, 'created', now)
  redis.call('HSET', KEYS[2], 't', team, 'n', name, 'pk', pk, 'h', host)
  if phone ~= '' then redis.call('HSET', 'cr:sms:' .. phone, 't', team, 'n', name, 'pk', pk, 'h', host) end
  redis.call('HSET', KEYS[5], name, id)
  audit(KEYS[4], maxlen, now, actor, name, 'identity.create', '', 'ok')
  return {'ok', phone}
end

-- list: KEYS[1] cr:{T}:ids, ARGV 'list', key prefix 'cr:{T}:id:'  -> {HGETALL of each identity}, by name
if step == 'list' then
  local names = redis.call('HKEYS', KEYS[1])
  table.sort(names)
  local out = {}
  for _, n in ipairs(names) do
    local rec = redis.call('HGETALL', ARGV[2] .. n)
    if #rec > 0 then out[#out + 1] = rec end
  end
  return out
end

-- vput: KEYS[1] cr:{T}:vault:<name>, KEYS[2] cr:{T}:id:<name>, KEYS[3] cr:{T}:audit
--   ARGV 'vput', key, version, blob, inject ('0'|'1'), now, actor, name, audit maxlen, versions kept
--   -> {'ok', version} | {'noid'} | {'conflict', current version}   (version must be the current one + 1)
if step == 'vput' then
  local key, ver, blob, inject, now, actor, name, maxlen, keep =
    ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], tonumber(ARGV[10])
  if redis.call('EXISTS', KEYS[2]) == 0 then return {'noid'} end
  local cur = tonumber(redis.call('HGET', KEYS[1], 'v:' .. key) or '0')
  if ver ~= cur + 1 then
    audit(KEYS[3], maxlen, now, actor, name, 'secret.write', key, 'conflict')
    return {'conflict', cur}
  end
  redis.call('HSET', KEYS[1], 'c:' .. key .. ':' .. ver, blob, 'v:' .. key, ver, 'm:' .. key, now .. ':' .. inject)
  if ver - keep >= 1 then redis.call('HDEL', KEYS[1], 'c:' .. key .. ':' .. (ver - keep)) end
  audit(KEYS[3], maxlen, now, actor, name, 'secret.write', key, 'ok')
  return {'ok', ver}
end

-- vget: KEYS as vput; ARGV 'vget', key, version ('' for the current), now, actor, name, audit maxlen
--   -> {'ok', version, blob} | {'noid'} | {'nokey'} | {'noversion', current version}
if step == 'vget' then
  local key, want, now, actor, name, maxlen = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
  if redis.call('EXISTS', KEYS[2]) == 0 then return {'noid'} end
  local cur = redis.call('HGET', KEYS[1], 'v:' .. key)
  if not cur then
    audit(KEYS[3], maxlen, now, actor, name, 'secret.read', key, 'not_found')
    return {'nokey'}
  end
  local ver = want ~= '' and want or cur
  local blob = redis.call('HGET', KEYS[1], 'c:' .. key .. ':' .. ver)
  if not blob then
    audit(KEYS[3], maxlen, now, actor, name, 'secret.read', key, 'not_found')
    return {'noversion', cur}
  end
  audit(KEYS[3], maxlen, now, actor, name, 'secret.read', key, 'ok')
  return {'ok', ver, blob}
end

-- vdel: KEYS as vput; ARGV 'vdel', key, now, actor, name, audit maxlen -> {'ok', versions deleted} | {'noid'} | {'nokey'}
if step == 'vdel' then
  local key, now, actor, name, maxlen = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
  if redis.call('EXISTS', KEYS[2]) == 0 then return {'noid'} end
  local cur = tonumber(redis.call('HGET', KEYS[1], 'v:' .. key) or '0')
  if cur == 0 then
    audit(KEYS[3], maxlen, now, actor, name, 'secret.delete', key, 'not_found')
    return {'nokey'}
  end
  local n = 0
  for v = cur, 1, -1 do
    n = n + redis.call('HDEL', KEYS[1], 'c:' .. key .. ':' .. v)
  end
  redis.call('HDEL', KEYS[1], 'v:' .. key, 'm:' .. key)
  audit(KEYS[3], maxlen, now, actor, name, 'secret.delete', key, 'ok')
  return {'ok', n}
end

-- vlist: KEYS[1] vault, KEYS[2] id; ARGV 'vlist' -> {'ok', {key, version, meta}...} | {'noid'}   (names only)
if step == 'vlist' then
  if redis.call('EXISTS', KEYS[2]) == 0 then return {'noid'} end
  local all = redis.call('HGETALL', KEYS[1])
  local out = {}
  for i = 1, #all, 2 do
    local f = all[i]
    if string.sub(f, 1, 2) == 'v:' then
      local key = string.sub(f, 3)
      out[#out + 1] = {key, all[i + 1], redis.call('HGET', KEYS[1], 'm:' .. key) or ''}
    end
  end
  table.sort(out, function(a, b) return a[1] < b[1] end)
  return {'ok', out}
end

-- inbox: KEYS[1] cr:{T}:inbox:<name>, KEYS[2] cr:{T}:act:<host>, KEYS[3] cr:{T}:id:<name>
--   ARGV 'inbox', kind ('mail'|'sms'), sealed blob, now, inbox maxlen, live channel 'cr:live:{T}', host, name
--   -> {'ok', inbox entry id} | {'noid'}     the host is told on its downlink (an entry n=inbox in its action stream)
if step == 'inbox' then
  local kind, blob, now, maxlen, channel, host, name = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
  if redis.call('EXISTS', KEYS[3]) == 0 then return {'noid'} end
  local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', 'k', kind, 'b', blob, 't', now)
  redis.call('XADD', KEYS[2], '*', 'n', 'inbox', 'i', name, 'm', id)
  redis.call('PUBLISH', channel, 'a' .. host)
  return {'ok', id}
end

-- audit: KEYS[1] cr:{T}:audit; ARGV 'audit', audit maxlen, then 6 values per record (t, actor, idn, op, key, outcome)
--   -> number of records written
if step == 'audit' then
  local maxlen, n = ARGV[2], 0
  for i = 3, #ARGV - 5, 6 do
    audit(KEYS[1], maxlen, ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5])
    n = n + 1
  end
  return n
end

-- pool: KEYS[1] cr:sms:pool; ARGV 'pool', numbers... -> numbers added (those not routed to an identity already)
if step == 'pool' then
  local n = 0
  for i = 2, #ARGV do
    if redis.call('EXISTS', 'cr:sms:' .. ARGV[i]) == 0 then n = n + redis.call('SADD', KEYS[1], ARGV[i]) end
  end
  return n
end

return redis.error_reply('identity.lua: unknown step ' .. tostring(step))

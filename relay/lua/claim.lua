-- claim.lua: turns a one-time pairing code into a device principal in one atomic step (pair.c, POST /v1/pair/claim).
--
-- KEYS[1] cr:pair:<code>  (a string: the JSON {"team", "host", "by": token hash of its maker, "created"}, TTL 10 min)
-- KEYS[2] cr:tok:<sha256 of the new device token>
-- ARGV    device id, name (the token's label), now (ms), device record (msgpack, made by pair.c)
--   -> {'gone'}          no such code: never made, expired, already claimed, or its maker's token or team is gone
--                        (one answer for all of them)
--   -> {'ok', team}      the code is consumed; the token record, cr:{T}:toks and the record in cr:{T}:dev are written
--
-- The claimer cannot know the team, so the team's keys are made here from the code's record and are not in KEYS:
-- fine on one Redis (on a Redis Cluster the claim would have to be split in two calls).

local v = redis.call('GET', KEYS[1])
if not v then return {'gone'} end
redis.call('DEL', KEYS[1])
local ok, p = pcall(cjson.decode, v)
if not ok or type(p) ~= 'table' or type(p.team) ~= 'string' or type(p.by) ~= 'string' then return {'gone'} end
-- a code dies with the token that made it (revoked host) and with its team
if redis.call('EXISTS', 'cr:tok:' .. p.by) == 0 or redis.call('HEXISTS', 'cr:teams', p.team) == 0 then
  return {'gone'}
end
if redis.call('EXISTS', KEYS[2]) == 1 then return redis.error_reply('claim.lua: token hash collision') end
local tag = 'cr:{' .. p.team .. '}:'
redis.call('HSET', KEYS[2], 'team', p.team, 'kind', 'device', 'id', ARGV[1], 'label', ARGV[2], 'created', ARGV[3])
redis.call('SADD', tag .. 'toks', string.sub(KEYS[2], 8))
redis.call('HSET', tag .. 'dev', ARGV[1], ARGV[4])
return {'ok', p.team}

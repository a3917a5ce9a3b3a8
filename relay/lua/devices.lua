-- devices.lua: a team's devices and what push knows of each, in one reply (GET /v1/devices, pair.c).
-- KEYS[1] cr:{T}:dev, KEYS[2] cr:{T}:devst. Returns {HGETALL dev, HGETALL devst}.
return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2])}

-- push_dead.lua: a provider said a device's token is gone (APNs 410 / BadDeviceToken / DeviceTokenNotForTopic, FCM
-- UNREGISTERED, Web Push 404/410): delete the device — unless it registered again since the record the push used
-- (then the record differs), or, with APNs' 410 timestamp, registered after Apple saw the token die.
--
-- KEYS[1] cr:{T}:dev  KEYS[2] cr:{T}:devst (what push knows per device: "<id>:ok", "<id>:err" ...)
-- ARGV[1] device id, ARGV[2] the record the push read, ARGV[3] APNs' timestamp (ms, 0: none),
-- ARGV[4] the record's registration time (ms), ARGV[5] the reason, ARGV[6] now (ms)
-- Returns 1 when the device was deleted, 0 when it was kept.
local id = ARGV[1]
redis.call('HSET', KEYS[2], id .. ':err', ARGV[5] .. ' ' .. ARGV[6])
if redis.call('HGET', KEYS[1], id) ~= ARGV[2] then return 0 end
-- Apple's timestamps may be whole seconds: only a registration a full second after it is newer
local dead = tonumber(ARGV[3])
if dead > 0 and tonumber(ARGV[4]) >= dead + 1000 then return 0 end
redis.call('HDEL', KEYS[1], id)
redis.call('HSET', KEYS[2], id .. ':deleted', ARGV[6])
return 1

-- lib/streamid.lua: stream-id helpers shared by scripts; embed_lua.cmake pastes this file in place of a script's
-- include line naming it (Redis scripts cannot load modules).

-- Compares two canonical stream ids (decimal without leading zeros): -1, 0 or 1.
local function cmp(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  local function num(x, y)
    if #x ~= #y then return #x < #y and -1 or 1 end
    if x ~= y then return x < y and -1 or 1 end
    return 0
  end
  local c = num(am, bm)
  if c ~= 0 then return c end
  return num(as, bs)
end

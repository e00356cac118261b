-- Increment the versions that exist (a missing one stays missing; like Django's
-- incr, a bump keeps the key's expiry), lift the holder's marks, then store
-- each write whose expectations hold, or else increment its fallback versions.
-- ARGV: tag ttl (ms), number of bumps, number of marks to lift, their holder,
-- then per write: number of fallbacks, number of expectations, (mode, version)
-- pairs, ttl (ms, 0 = none), value.
-- KEYS: bumps, marks, then per write: its fallback keys, entry key and
-- expectation keys.
local tag_ttl = tonumber(ARGV[1])
local nbump = tonumber(ARGV[2])
local nmark = tonumber(ARGV[3])
local function bump(first, count)
  if count > 0 then
    local found = mget(first, count)
    for i = 1, count do
      if found[i] then incr(KEYS[first + i - 1]) end
    end
  end
end
-- The versions to bump and the marks to lift, in one read.
local found = nbump + nmark > 0 and mget(1, nbump + nmark) or {}
for i = 1, nbump do
  if found[i] then incr(KEYS[i]) end
end
if nmark > 0 then
  local token = ARGV[4]
  local own = token .. ':'
  local now = nil
  for i = nbump + 1, nbump + nmark do
    local value = found[i]
    if value and string.sub(value, 1, #own) == own and not string.find(value, ' ', 1, true) then
      redis.call('DEL', KEYS[i])  -- the holder's mark alone: no clock, nothing to keep
    elseif value then
      now = now or now_ms()
      local kept, latest = holders(value, now, token)
      if #kept == 0 then
        redis.call('DEL', KEYS[i])
      else
        redis.call('SET', KEYS[i], table.concat(kept, ' '), 'PX', latest - now)
      end
    end
  end
end
local k = nbump + nmark + 1
local a = 5
local stored = 0
while a <= #ARGV do
  local nfall = tonumber(ARGV[a])
  local fallback = k
  k = k + nfall
  a = a + 1
  local entry = KEYS[k]
  local n = tonumber(ARGV[a])
  local ok = true
  if n > 0 then
    local current = mget(k + 1, n)
    for j = 1, n do
      if ARGV[a + 2 * j - 1] == 'c' then
        if current[j] then ok = false end
      elseif current[j] ~= ARGV[a + 2 * j] then
        ok = false
      end
    end
  end
  if ok then
    for j = 1, n do
      if ARGV[a + 2 * j - 1] == 'c' then
        redis.call('SET', KEYS[k + j], ARGV[a + 2 * j], 'PX', tag_ttl)
      end
    end
    local ttl = tonumber(ARGV[a + 2 * n + 1])
    if ttl > 0 then
      redis.call('SET', entry, ARGV[a + 2 * n + 2], 'PX', ttl)
    else
      redis.call('SET', entry, ARGV[a + 2 * n + 2])
    end
    outlive(k + 1, n, ttl)
    stored = stored + 1
  else
    bump(fallback, nfall)
  end
  k = k + n + 1
  a = a + 2 * n + 3
end
return stored

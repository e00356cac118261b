-- The functions every script starts with (django_cachekit.stores.redis loads them before each).
-- One MGET reads a group of keys: a script's redis.call
-- costs about a microsecond each, a Redis call from Lua more than the work it
-- does here.
--
-- A mark (a write being committed) is a string of "holder:deadline" pairs, the
-- deadline in milliseconds of the server's clock; the key expires with its
-- latest deadline, and a holder past its own is dropped whenever the key is
-- written, so a writer that died leaves its mark for at most its bound.
local function mget(first, count)
  local out = {}
  for start = first, first + count - 1, 1000 do
    local last = math.min(start + 999, first + count - 1)
    local part = redis.call('MGET', unpack(KEYS, start, last))
    for i = 1, #part do
      out[#out + 1] = part[i]
    end
  end
  return out
end
-- A version is an integer that INCR can still increment (django-cachekit's
-- start below 2^62), written as Redis writes integers; anything else at a
-- version key is a missing version.
local function is_version(value)
  if type(value) ~= 'string' or not (value == '0' or string.match(value, '^%-?[1-9]%d*$')) then
    return false
  end
  local n = tonumber(value)
  return n ~= nil and n < 9e18 and n > -9e18
end
-- Increment the version at key, which holds a string. What INCR cannot
-- increment is not a version: it is deleted (made missing), and the next
-- reader creates a fresh one. One call in the common case: the check is INCR's own.
local function incr(key)
  if type(redis.pcall('INCR', key)) ~= 'number' then
    redis.call('DEL', key)
  end
end
-- Keep the versions KEYS[first..first+count-1] alive at least ttl ms (0: an
-- entry without expiry, so they must not expire either); missing ones stay missing.
local function outlive(first, count, ttl)
  for i = first, first + count - 1 do
    local left = redis.call('PTTL', KEYS[i])
    if left >= 0 then
      if ttl == 0 then
        redis.call('PERSIST', KEYS[i])
      elseif left < ttl then
        redis.call('PEXPIRE', KEYS[i], ttl)
      end
    end
  end
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function holders(value, now, token)
  local kept, latest = {}, 0
  if value then
    for holder, deadline in string.gmatch(value, '(%w+):(%d+)') do
      deadline = tonumber(deadline)
      if holder ~= token and deadline > now then
        kept[#kept + 1] = holder .. ':' .. deadline
        if deadline > latest then latest = deadline end
      end
    end
  end
  return kept, latest
end

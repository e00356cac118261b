-- Mark the first ARGV[3] KEYS for the holder ARGV[1] until ARGV[2] ms from now,
-- and bump the versions that follow them in KEYS (as _BUMP does).
local token = ARGV[1]
local nmark = tonumber(ARGV[3])
local now = now_ms()
local deadline = now + tonumber(ARGV[2])
local found = mget(1, nmark)
for i = 1, nmark do
  local kept, latest = holders(found[i], now, token)
  kept[#kept + 1] = token .. ':' .. deadline
  if deadline > latest then latest = deadline end
  redis.call('SET', KEYS[i], table.concat(kept, ' '), 'PX', latest - now)
end
if #KEYS > nmark then
  local versions = mget(nmark + 1, #KEYS - nmark)
  for i = 1, #versions do
    if versions[i] then
      if is_version(versions[i]) then
        redis.call('INCR', KEYS[nmark + i])
      else
        redis.call('DEL', KEYS[nmark + i])
      end
    end
  end
end
return nmark

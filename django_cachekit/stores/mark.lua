-- Mark the first ARGV[3] KEYS for the holder ARGV[1] until ARGV[2] ms from now,
-- and bump the versions that follow them in KEYS (as _BUMP does).
local token = ARGV[1]
local nmark = tonumber(ARGV[3])
local bound = tonumber(ARGV[2])
local now = now_ms()
local deadline = now + bound
local own = token .. ':' .. deadline
local found = mget(1, #KEYS)
for i = 1, nmark do
  if found[i] then
    local kept, latest = holders(found[i], now, token)
    kept[#kept + 1] = own
    if deadline > latest then latest = deadline end
    redis.call('SET', KEYS[i], table.concat(kept, ' '), 'PX', latest - now)
  else
    redis.call('SET', KEYS[i], own, 'PX', bound)
  end
end
for i = nmark + 1, #KEYS do
  if found[i] then incr(KEYS[i]) end
end
return nmark

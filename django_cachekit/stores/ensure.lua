-- Create each missing version at the given fresh value (a key holding anything
-- but a version, of any type, counts as missing); return all current values.
local ttl = tonumber(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
  local found = redis.pcall('GET', key)
  if is_version(found) then
    out[i] = found
  else
    redis.call('SET', key, ARGV[i + 1], 'PX', ttl)
    out[i] = ARGV[i + 1]
  end
end
return out

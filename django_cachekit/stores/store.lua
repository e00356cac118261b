-- Store ARGV[2] entries: KEYS[i] = ARGV[i + 2], expiring in ARGV[1] ms (0: never),
-- and keep the version keys after them alive as long.
local ttl = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
for i = 1, n do
  if ttl > 0 then
    redis.call('SET', KEYS[i], ARGV[i + 2], 'PX', ttl)
  else
    redis.call('SET', KEYS[i], ARGV[i + 2])
  end
end
outlive(n + 1, #KEYS - n, ttl)
return n

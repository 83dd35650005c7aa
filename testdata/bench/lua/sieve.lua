-- sieve.lua N: sieve of Eratosthenes up to N, run 4 times.
local n = tonumber(arg and arg[1]) or 100000
local count, sum = 0, 0
for _ = 1, 4 do
  local composite = {}
  for i = 2, n do composite[i] = false end
  count, sum = 0, 0
  for i = 2, n do
    if not composite[i] then
      count = count + 1
      sum = (sum + i) % 1000000007
      for k = i * i, n, i do composite[k] = true end
    end
  end
end
print(string.format("primes<=%d: %d sum %d", n, count, sum))

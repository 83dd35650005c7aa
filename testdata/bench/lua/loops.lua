-- loops.lua N: integer and float arithmetic in plain counted loops.
local n = tonumber(arg and arg[1]) or 1000000
local s = 0
for i = 1, n do
  s = (s + i * i % 7 + i % 3) % 1000000007
end
local x = 0.0
for i = 1, n do
  x = x + 1.0 / i
end
local j, c = 0, 0
while j < n do
  if j % 3 == 0 then c = c + 1 end
  j = j + 1
end
print(string.format("%d %.9f %d", s, x, c))

-- rejoin.lua N: a loop whose body branches three ways, then runs a long
-- part common to all three: the side traces of the branches rejoin the
-- root trace's path where the branches meet, and share one continuation
-- there instead of copying the common part each.
local n = tonumber(arg and arg[1]) or 100000
local t = {}
for i = 1, 64 do t[i] = i * 3 end
local a, b, c = 0, 0, 0
local s, u, v, w = 0, 1, 2, 3
for i = 1, n do
  local k = i % 3
  if k == 0 then
    a = a + 1
  elseif k == 1 then
    b = b + 2
  else
    c = c + 3
  end
  local j = i % 64 + 1
  s = (s + t[j] * 2) % 1000003
  u = (u * 3 + t[j]) % 1000033
  v = (v + u - s) % 1000037
  w = (w + v * 7) % 1000039
  s = (s + w + 1) % 1000003
  u = (u + s * 5) % 1000033
  v = (v * 2 + w) % 1000037
  w = (w + u + v) % 1000039
  s = (s + t[(j % 64) + 1]) % 1000003
  u = (u + t[((j + 7) % 64) + 1]) % 1000033
end
print(a, b, c, s, u, v, w)

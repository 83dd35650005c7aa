-- Comparisons whose operands change every iteration, against constants
-- and variables, integer and float, in all the forms the compiler emits.
local function h(acc, b) return (acc * 31 + (b and 1 or 0)) % 1000000007 end
local vals = {-2, -1, 0, 1, 2, 3, 100, -100, math.maxinteger, math.mininteger}
local fvals = {-1.5, -0.0, 0.0, 0.5, 1.0, 2.0, 0/0, 1/0, -1/0, 1e300}
for round = 1, 3 do
  local acc = 0
  for i = 1, 20000 do
    local a = vals[i % #vals + 1]
    local b = vals[(i * 7) % #vals + 1]
    acc = h(acc, a == 0) acc = h(acc, a ~= 0) acc = h(acc, a == 1) acc = h(acc, a ~= -1)
    acc = h(acc, a < 0) acc = h(acc, a <= 0) acc = h(acc, a > 0) acc = h(acc, a >= 0)
    acc = h(acc, a < 2) acc = h(acc, a > -2) acc = h(acc, a >= 100) acc = h(acc, a <= -100)
    acc = h(acc, a == b) acc = h(acc, a < b) acc = h(acc, a <= b) acc = h(acc, a > b)
    local x = fvals[i % #fvals + 1]
    local y = fvals[(i * 3) % #fvals + 1]
    acc = h(acc, x == 0) acc = h(acc, x < 0) acc = h(acc, x <= 0.5) acc = h(acc, x > 1) acc = h(acc, x >= -1)
    acc = h(acc, x == y) acc = h(acc, x < y) acc = h(acc, x <= y) acc = h(acc, x ~= x)
    acc = h(acc, a == x) acc = h(acc, a < x) acc = h(acc, x <= a)
    if round == 2 then acc = h(acc, a == "1") acc = h(acc, tostring(a) < tostring(b)) end
    if round == 3 then acc = h(acc, math.ult(a, b)) acc = h(acc, a // 1 == a) acc = h(acc, x // 1 == x) end
  end
  print("round", round, acc)
end
-- Branch on the result of an arithmetic op being zero / negative.
local z, neg = 0, 0
for i = -10000, 10000 do
  local d = i % 7 - 3
  if d == 0 then z = z + 1 end
  if d < 0 then neg = neg + 1 end
  if i & 3 == 0 then z = z + 10 end
  if (i ~ 5) < 0 then neg = neg + 10 end
  if i * i - 2500 > 0 then z = z + 100 end
end
print("branches", z, neg)
-- Divisors and shifts taking each special value.
local acc = 0
for i = 1, 30000 do
  local d = i % 5 - 2          -- -2..2
  if d ~= 0 then acc = acc + (i // d) + (i % d) end
  local f = (i % 4) - 1.5
  acc = acc + (i // f) + (i % f)
  local sh = i % 70 - 5         -- shifts past 64 and negative
  acc = acc + ((i << sh) ~ (i >> sh)) % 1000
end
print("divshift", acc)

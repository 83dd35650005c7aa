-- while and repeat-until loops.
local i, s = 0, 0
while i < 100000 do
  i = i + 1
  s = s + (i % 2 == 0 and i or -i)
end
print("while", i, s)

-- Collatz lengths: a while loop inside a for loop.
local longest, arg = 0, 0
for n = 1, 20000 do
  local x, len = n, 1
  while x ~= 1 do
    if x % 2 == 0 then x = x // 2 else x = 3 * x + 1 end
    len = len + 1
  end
  if len > longest then longest, arg = len, n end
end
print("collatz", longest, arg)

local r = 0
repeat
  r = r + 3
until r >= 100000
print("repeat", r)

-- The until condition sees the body's locals.
local k = 0
repeat
  local done = k * k > 2000000000
  k = k + 1
until done
print("repeat local", k)

-- while with break, and a float condition.
local f, steps = 1.0, 0
while true do
  f = f * 1.0001
  steps = steps + 1
  if f > 2.0 then break end
end
print("float while", steps, string.format("%.10f", f))

-- Newton's method for square roots in repeat loops.
local total = 0.0
for n = 1, 5000 do
  local g = n / 2 + 1
  repeat
    local ng = (g + n / g) / 2
    local diff = math.abs(ng - g)
    g = ng
  until diff < 1e-12
  total = total + g
end
print("sqrt", string.format("%.9f", total))

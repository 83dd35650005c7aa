-- goto: the continue idiom, backward gotos as loops, nested.
local s = 0
for i = 1, 100000 do
  if i % 3 == 0 then goto continue end
  s = s + i
  ::continue::
end
print("continue", s)

local n, acc = 0, 0
::top::
n = n + 1
acc = acc + n * n % 17
if n < 50000 then goto top end
print("backward", n, acc)

-- Nested goto loops.
local i, total = 0, 0
::outer::
i = i + 1
do
  local j = 0
  ::inner::
  j = j + 1
  total = total + i * j % 7
  if j < 300 then goto inner end
end
if i < 200 then goto outer end
print("nested", i, total)

-- continue inside a while loop, and goto out of nested loops.
local w, ws = 0, 0
while w < 60000 do
  w = w + 1
  if w % 5 == 0 then goto next end
  ws = ws + w % 11
  ::next::
end
print("while continue", ws)

local found
for a = 1, 1000 do
  for b = a, 1000 do
    if a * a + b * b == 625 * 625 then
      found = a .. "," .. b
      goto done
    end
  end
end
::done::
print("goto out", found)

-- Closures created before a backward goto capture a fresh local each time.
local fns = {}
do
  local k = 1
  ::again::
  local x = k * 10
  fns[k] = function() return x end
  k = k + 1
  if k <= 6000 then goto again end
end
local fs = 0
for q = 1, #fns do fs = fs + fns[q]() end
print("goto closures", fs)

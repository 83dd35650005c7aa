-- A short inner loop whose trip count changes with the outer loop's
-- variable (1 to 7): the shape of n-body's pair loops and of most loops
-- over small collections. The outer loop's back-edge is taken inside the
-- side trace that continues from the inner loop's exit.
local n = tonumber(arg and arg[1]) or 30000
local t = {}
for i = 1, 100 do t[i] = i end
local s, w = 0, 0
for k = 1, n do
  for i = 1, (k % 7) + 1 do s = s + t[i] end
  w = w + k % 3
end
print("short inner", s, w)

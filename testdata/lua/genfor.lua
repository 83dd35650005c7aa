-- Generic for: pairs, ipairs, custom iterators, stateful closures.
local arr = {}
for i = 1, 20000 do arr[i] = i % 101 end

local s = 0
for i, v in ipairs(arr) do s = s + i * v end
print("ipairs", s)

-- ipairs stops at the first nil.
local holes = {1, 2, 3}
holes[5] = 5
local n = 0
for _ in ipairs(holes) do n = n + 1 end
print("ipairs hole", n)

-- pairs: the order of hash keys varies with the string hash seed, so only
-- order-independent results are printed.
local h = {}
for i = 1, 8000 do h["key" .. i] = i end
for i = 1, 8000 do h[i] = -i end
h[1.5] = 1000
local ks, vs, cnt = 0, 0, 0
for k, v in pairs(h) do
  cnt = cnt + 1
  vs = vs + v
  if type(k) == "number" then ks = ks + k else ks = ks + #k end
end
print("pairs", cnt, vs, ks)

-- next directly, clearing fields while traversing (allowed by Lua).
local cleared = 0
for k in next, h do
  if type(k) == "string" then h[k] = nil; cleared = cleared + 1 end
end
local left = 0
for _ in pairs(h) do left = left + 1 end
print("cleared", cleared, left)

-- A stateless custom iterator.
local function evens(max, i)
  i = i + 2
  if i <= max then return i, i * i end
end
local es = 0
for i, sq in evens, 30000, 0 do es = es + sq % 1000 + i end
print("stateless", es)

-- A stateful closure iterator.
local function range(a, b, step)
  local i = a - step
  return function()
    i = i + step
    if i <= b then return i end
  end
end
local rs = 0
for i in range(1, 50000, 3) do rs = rs + i end
print("closure", rs)

-- An iterator over a linked list.
local list
for i = 1, 10000 do list = {v = i, next = list} end
local function nodes(l)
  return function(_, node)
    if node == nil then return l end
    return node.next
  end, nil, nil
end
local ls = 0
for node in nodes(list) do ls = ls + node.v end
print("list", ls)

-- Iterator with several return values and a to-be-closed value.
local closed = 0
local function multi(n)
  local i = 0
  local closer = setmetatable({}, {__close = function() closed = closed + 1 end})
  return function()
    i = i + 1
    if i <= n then return i, i * 2, i * 3 end
  end, nil, nil, closer
end
local ms = 0
for a, b, c in multi(10000) do ms = ms + a + b + c end
for a in multi(10000) do if a == 5000 then break end end
print("multi", ms, closed)

-- Nested generic loops, and string.gmatch.
local words = {}
for w in string.gmatch(string.rep("alpha beta gamma delta ", 2000), "%a+") do
  words[#words + 1] = w
end
local wl = 0
for _, w in ipairs(words) do for c in w:gmatch(".") do wl = wl + c:byte() end end
print("gmatch", #words, wl)

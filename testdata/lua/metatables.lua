-- Metamethods in hot loops.
local V = {}
V.__index = V
V.__add = function(a, b) return setmetatable({x = a.x + b.x, y = a.y + b.y}, V) end
V.__sub = function(a, b) return setmetatable({x = a.x - b.x, y = a.y - b.y}, V) end
V.__mul = function(a, k) return setmetatable({x = a.x * k, y = a.y * k}, V) end
V.__unm = function(a) return setmetatable({x = -a.x, y = -a.y}, V) end
V.__eq = function(a, b) return a.x == b.x and a.y == b.y end
V.__lt = function(a, b) return a.x * a.x + a.y * a.y < b.x * b.x + b.y * b.y end
V.__le = function(a, b) return not (b < a) end
V.__len = function(a) return a.x + a.y end
V.__concat = function(a, b)
  local sa = type(a) == "table" and ("(" .. a.x .. "," .. a.y .. ")") or a
  local sb = type(b) == "table" and ("(" .. b.x .. "," .. b.y .. ")") or b
  return sa .. sb
end
V.__call = function(self, k) return self.x * k + self.y end
V.__tostring = function(a) return "V(" .. a.x .. "," .. a.y .. ")" end
function V.new(x, y) return setmetatable({x = x, y = y}, V) end
function V:dot(o) return self.x * o.x + self.y * o.y end

local acc = V.new(0, 0)
local eqs, lts, les, lens, calls, dots = 0, 0, 0, 0, 0, 0
for i = 1, 20000 do
  local v = V.new(i % 10, i % 7)
  acc = acc + v - V.new(1, 1) * 0.5
  acc = -(-acc)
  if v == V.new(3, 3) then eqs = eqs + 1 end
  if v < V.new(5, 0) then lts = lts + 1 end
  if v <= V.new(4, 3) then les = les + 1 end
  lens = lens + #v
  calls = calls + v(3)
  dots = dots + v:dot(v)
end
print("vector", tostring(acc), eqs, lts, les, lens, calls, dots)

local s = ""
local parts = {}
for i = 1, 6000 do
  parts[#parts + 1] = V.new(i % 3, i % 4) .. "|"
end
s = table.concat(parts)
print("concat", #s, s:sub(1, 40))
print("concat chain", "a" .. V.new(1, 2) .. "b" .. V.new(3, 4))

-- __index chains (functions and tables) and __newindex.
local base = {greet = function() return 1 end}
local mid = setmetatable({}, {__index = base})
local misses = 0
local top = setmetatable({}, {__index = function(t, k)
  misses = misses + 1
  return mid[k] or #k
end})
local ix = 0
for i = 1, 20000 do
  ix = ix + top.greet() + top["k" .. (i % 10)]
end
print("index", ix, misses)

local log = {}
local store = {}
local proxy = setmetatable({}, {
  __newindex = function(t, k, v) log[#log + 1] = k; store[k] = v end,
  __index = store,
})
for i = 1, 20000 do proxy[i % 100] = i end
local ps = 0
for i = 0, 99 do ps = ps + proxy[i] end
print("newindex", #log, ps)
-- rawset bypasses __newindex, then plain writes no longer call it.
local n = 0
local rt = setmetatable({}, {__newindex = function(t, k, v) n = n + 1; rawset(t, k, v) end})
for i = 1, 10000 do rt[i % 50] = i end
print("rawset", n, rt[0], rawget(rt, 49))

-- Types changing in the middle of a hot loop: integer, float, string.
local x = 0
local kinds = {}
for i = 1, 30000 do
  if i == 10000 then x = x + 0.5 end
  if i == 20000 then x = tostring(x) end
  x = x + 1  -- the string is coerced back to a number
  kinds[math.type(x) or type(x)] = (kinds[math.type(x) or type(x)] or 0) + 1
end
print("changing", x, math.type(x), kinds.integer, kinds.float)

local y = 1
local results = {}
for i = 1, 9000 do
  if i == 3000 then y = 1.25 elseif i == 6000 then y = "7" end
  local r = y * 2 + i
  results[#results + 1] = math.type(r)
end
local counts = {}
for _, k in ipairs(results) do counts[k] = (counts[k] or 0) + 1 end
print("mixed", counts.integer, counts.float)

-- Values changing type in a table read by a hot loop.
local vals = {}
for i = 1, 12000 do
  local m = i % 4
  vals[i] = m == 0 and i or m == 1 and i + 0.5 or m == 2 and tostring(i) or V.new(i, 0)
end
local total = 0
for i = 1, #vals do
  local v = vals[i]
  if type(v) == "table" then total = total + v.x else total = total + v end
end
print("poly", total, math.type(total))

-- Arithmetic metamethods on mixed operand orders, and __idiv, __mod,
-- bitwise metamethods.
local N = setmetatable({}, {
  __add = function(a, b) return 1 end,
  __idiv = function(a, b) return 2 end,
  __mod = function(a, b) return 3 end,
  __band = function(a, b) return 4 end,
  __shl = function(a, b) return 5 end,
  __bnot = function(a) return 6 end,
  __pow = function(a, b) return 7 end,
  __div = function(a, b) return 8 end,
})
local ms = 0
for i = 1, 8000 do
  ms = ms + (N + i) + (i + N) + (N // i) + (i % N) + (N & i) + (i << N) + (~N) + (N ^ i) + (i / N)
end
print("arith meta", ms)

-- __close and __gc-free __mode tables.
local closes = 0
for i = 1, 6000 do
  local c <close> = setmetatable({}, {__close = function() closes = closes + 1 end})
end
print("close", closes)

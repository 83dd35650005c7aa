-- Things that change in the middle of hot loops.
-- A metatable swapped mid-loop.
local A = {__index = function(t, k) return 1 end}
local B = {__index = function(t, k) return 2 end}
local C = {__index = {foo = 3}}
local o = setmetatable({}, A)
local s = 0
for i = 1, 30000 do
  if i == 10000 then setmetatable(o, B) elseif i == 20000 then setmetatable(o, C) elseif i == 25000 then o.foo = 4 end
  s = s + o.foo
end
print("swap mt", s)
-- A global function redefined mid-loop.
function gf(x) return x + 1 end
local g = 0
for i = 1, 30000 do
  g = gf(g)
  if i == 15000 then gf = function(x) return x + 2 end end
  if i == 25000 then gf = math.abs end
end
print("redefine", g)
-- Short strings become long strings (> 40 bytes) mid-loop: equality by
-- content instead of by pointer.
local eq = 0
for i = 1, 20000 do
  local n = i < 10000 and 10 or 50
  local a = string.rep("x", n) .. (i % 3)
  local b = string.rep("x", n) .. (i % 3)
  if a == b then eq = eq + 1 end
  local t = {[a] = i}
  if t[b] == i then eq = eq + 1 end
end
print("long strings", eq)
-- Keys moving from the array part to the hash part and back.
local t = {}
local ts = 0
for i = 1, 40000 do
  local k = (i < 20000) and i or (i * 7919)
  t[k] = i
  ts = ts + (t[k] or 0) + #t % 3
  if i == 30000 then for j = 1, 19999, 2 do t[j] = nil end end
end
print("rehash", ts)
-- Varargs with changing counts.
local function count(...) return select("#", ...) + (... or 0) end
local vc = 0
for i = 1, 30000 do
  local k = i % 5
  if k == 0 then vc = vc + count() elseif k == 1 then vc = vc + count(i)
  elseif k == 2 then vc = vc + count(i, nil, i) elseif k == 3 then vc = vc + count(table.unpack({1, 2, 3, 4, 5, 6}, 1, i % 7))
  else vc = vc + count(nil) end
end
print("varargs", vc)
-- Boolean/nil tests of changing values.
local vals = {false, nil, 0, "", {}, true}
local truthy = 0
for i = 1, 30000 do
  local v = vals[i % 6 + 1]
  if v then truthy = truthy + 1 end
  if not v then truthy = truthy + 10 end
  if v == nil then truthy = truthy + 100 end
  if v == false then truthy = truthy + 1000 end
end
print("truthy", truthy)
-- Upvalue closed mid-loop: closures created before and after.
local getters = {}
for i = 1, 20000 do
  local v = i
  if i % 2 == 0 then getters[#getters + 1] = function() return v end end
  v = v * 3
end
local gs = 0
for _, f in ipairs(getters) do gs = gs + f() end
print("closed", gs)
-- integer division / modulo by values changing sign mid-loop.
local dm = 0
for i = -15000, 15000 do
  local d = (i % 11) - 5
  if d ~= 0 then dm = dm + (i // d) * 3 + i % d + math.fmod(i, d) end
  dm = dm + (i * 1.5) // 1 + (-i) % 7.5
end
print("divmod", dm)
-- String comparison (less than) with locale-independent strings.
local words = {}
for i = 1, 5000 do words[i] = string.format("w%05d", (i * 7919) % 5000) end
table.sort(words)
local lt = 0
for i = 2, #words do if words[i - 1] < words[i] then lt = lt + 1 end end
print("sort", lt, words[1], words[5000])
table.sort(words, function(a, b) return a > b end)
print("sort desc", words[1], words[5000])

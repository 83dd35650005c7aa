-- Deep recursion: non-tail recursion to stack overflow caught by pcall,
-- recursion that fits, and tail calls.
local function depth(n)
  if n == 0 then return 0 end
  return 1 + depth(n - 1)
end
print("fits", depth(10000))

-- Recursive calls from a hot loop.
local rs = 0
for i = 1, 20000 do rs = rs + depth(i % 40) end
print("from loop", rs)

-- Lua frames live on the Lua stack (at most 1,000,000 slots): a frame of
-- a dozen registers overflows it before depth 150000.
local function heavy(n)
  local a, b, c, d, e, f, g, h = n, n + 1, n + 2, n + 3, n + 4, n + 5, n + 6, n + 7
  if n == 0 then return a + b + c + d + e + f + g + h end
  return heavy(n - 1) + a - b + c - d + e - f + g - h
end
print("heavy fits", heavy(5000))
local ok, err = pcall(heavy, 150000)
print("overflow", ok, type(err), (string.find(tostring(err), "stack overflow", 1, true) ~= nil))

-- The stack is usable again after the overflow.
print("after", depth(20000))

-- Several overflows in a loop.
local overflows = 0
for i = 1, 3 do
  local ok2, e2 = pcall(heavy, 150000 + i)
  if not ok2 and tostring(e2):find("stack overflow", 1, true) then overflows = overflows + 1 end
end
print("overflows", overflows)

-- Overflow through a metamethod (C boundary) and through string.gsub.
local mt = {}
mt.__index = function(t, k) return t[k + 1] end
local ok3, e3 = pcall(function() return setmetatable({}, mt)[1] end)
print("meta overflow", ok3, (tostring(e3):find("overflow", 1, true) ~= nil))
local function g(s) return (s:gsub(".", g)) end
local ok4, e4 = pcall(g, "x")
print("gsub overflow", ok4, (tostring(e4):find("overflow", 1, true) ~= nil))

-- Tail calls run in constant stack.
local function loop(n, acc)
  if n == 0 then return acc end
  return loop(n - 1, acc + n % 7)
end
print("tail", loop(1000000, 0))

-- Mutual tail recursion.
local isodd
local function iseven(n) if n == 0 then return true end return isodd(n - 1) end
isodd = function(n) if n == 0 then return false end return iseven(n - 1) end
print("mutual", iseven(300001), isodd(300001))

-- Classic recursive functions.
local function fib(n) if n < 2 then return n end return fib(n - 1) + fib(n - 2) end
print("fib", fib(24))
local function ack(m, n)
  if m == 0 then return n + 1 end
  if n == 0 then return ack(m - 1, 1) end
  return ack(m - 1, ack(m, n - 1))
end
print("ack", ack(2, 300), ack(3, 5))
local function hanoi(n, a, b, c)
  if n == 0 then return 0 end
  return hanoi(n - 1, a, c, b) + 1 + hanoi(n - 1, c, b, a)
end
print("hanoi", hanoi(16, 1, 2, 3))
-- Recursion with varargs and multiple returns.
local function sum(...)
  local n = select("#", ...)
  if n == 0 then return 0 end
  local first = ...
  return first + sum(select(2, ...))
end
print("varsum", sum(table.unpack((function() local t = {} for i = 1, 150 do t[i] = i end return t end)())))

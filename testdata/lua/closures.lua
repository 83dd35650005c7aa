-- Closures and upvalues: counters, closures created in loops, shared and
-- closed upvalues.
local function counter()
  local n = 0
  return function(k) n = n + (k or 1); return n end
end
local c1, c2 = counter(), counter()
for i = 1, 50000 do c1(); if i % 3 == 0 then c2(i) end end
print("counters", c1(0), c2(0))

-- A closure per iteration: each captures its own loop variable.
local fs = {}
for i = 1, 10000 do fs[i] = function() return i * 2 end end
local s = 0
for i = 1, #fs do s = s + fs[i]() end
print("per iteration", s)

-- Closures sharing one upvalue, created in a while loop.
local getters, setters = {}, {}
local j = 0
while j < 5000 do
  j = j + 1
  local shared = j
  getters[j] = function() return shared end
  setters[j] = function(v) shared = v end
end
for k = 1, 5000, 2 do setters[k](getters[k]() * 3) end
local gs = 0
for k = 1, 5000 do gs = gs + getters[k]() end
print("shared", gs)

-- An upvalue modified by a hot loop in the enclosing function while the
-- closure reads it.
local function outer()
  local total = 0
  local function add(v) total = total + v end
  local function get() return total end
  local snap = 0
  for i = 1, 40000 do
    add(i % 9)
    if i % 10000 == 0 then snap = snap + get() end
  end
  return total, snap
end
print("enclosing", outer())

-- Deeply nested upvalues.
local function make(level)
  local a = level
  return function()
    local b = a * 2
    return function()
      local c = b + 1
      return function() a = a + 1; return a + b + c end
    end
  end
end
local ds = 0
for i = 1, 6000 do ds = ds + make(i)()()() end
print("nested", ds)

-- Memoising closure over a table, recursion through an upvalue.
local memo = {}
local fib
fib = function(n)
  if n < 2 then return n end
  local m = memo[n]
  if m then return m end
  m = (fib(n - 1) + fib(n - 2)) % 1000000007
  memo[n] = m
  return m
end
local fsum = 0
for i = 1, 5000 do fsum = (fsum + fib(i)) % 1000000007 end
print("memo", fsum)

-- Higher-order functions over arrays.
local function map(t, f) local r = {} for i = 1, #t do r[i] = f(t[i]) end return r end
local function filter(t, p) local r = {} for i = 1, #t do if p(t[i]) then r[#r + 1] = t[i] end end return r end
local function reduce(t, f, init) local a = init for i = 1, #t do a = f(a, t[i]) end return a end
local data = {}
for i = 1, 20000 do data[i] = i end
for round = 1, 3 do
  local k = round
  local r = reduce(filter(map(data, function(x) return x * k end), function(x) return x % 3 == 0 end),
    function(a, b) return a + b end, 0)
  print("hof", round, r)
end

-- Varargs through closures.
local function bind(f, ...)
  local args = table.pack(...)
  return function(...)
    local all = {table.unpack(args, 1, args.n)}
    for _, v in ipairs({...}) do all[#all + 1] = v end
    return f(table.unpack(all))
  end
end
local add3 = bind(function(a, b, c) return a + b + c end, 1)
local vs = 0
for i = 1, 10000 do vs = vs + add3(i, 2) end
print("varargs", vs, select("#", nil, nil), select(-1, 1, 2, 3))

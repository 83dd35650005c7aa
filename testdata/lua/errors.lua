-- pcall/error: errors from hot loops, error objects, errors in
-- metamethods, xpcall with a handler.
local function failAt(k)
  local s = 0
  for i = 1, 100000 do
    s = s + i
    if i == k then error("failed at " .. i .. " sum " .. s) end
  end
  return s
end
for _, k in ipairs({1, 2, 3, 999, 5000, 99999, 100001}) do
  print("failAt", k, pcall(failAt, k))
end

-- error with a level of 0 (no position) and 2 (the caller).
print("level0", pcall(error, "plain", 0))
local function lvl2() error("caller's fault", 2) end
local function calls() lvl2() end
print("level2", pcall(calls))

-- Error objects that are tables, thrown from a loop and caught in a loop.
local caught, codes = 0, 0
for i = 1, 20000 do
  local ok, e = pcall(function()
    if i % 7 == 0 then error({code = i, msg = "seven"}) end
    return i
  end)
  if not ok then caught = caught + 1; codes = codes + e.code end
end
print("table errors", caught, codes)

-- Errors that are not strings or tables.
print("number error", pcall(error, 42))
print("nil error", pcall(error))
print("bool error", pcall(error, false))

-- Runtime errors raised by the VM inside a hot loop.
local function arith(t)
  local s = 0
  for i = 1, #t do s = s + t[i] end
  return s
end
local t = {}
for i = 1, 10000 do t[i] = i end
t[8000] = "12"   -- string coerced: still fine
print("coerce", pcall(arith, t))
t[9000] = "x"
print("bad arith", pcall(arith, t))
t[9000] = {}
print("table arith", pcall(arith, t))
local function index(n)
  local v = {a = {b = 1}}
  for i = 1, n do
    if i == n then v = {} end
    local _ = v.a.b
  end
end
print("index nil", pcall(index, 6000))
local function callnil(n)
  local f = function() return 1 end
  local s = 0
  for i = 1, n do
    if i == n then f = nil end
    s = s + f()
  end
end
print("call nil", pcall(callnil, 6000))
print("int div zero", pcall(function() local z = 0 for i = 1, 6000 do z = i // (6000 - i) end end))
print("float div zero", pcall(function() local z = 0 for i = 1, 6000 do z = i / (6000 - i) end return z end))
print("mod zero", pcall(function() local z = 0 for i = 1, 6000 do z = i % (6000 - i) end end))
print("tointeger", pcall(function() local z = 0 for i = 1, 6000 do z = z + (1 << (i == 6000 and 1.5 or 1)) end end))
print("compare", pcall(function() for i = 1, 6000 do local _ = i < (i == 6000 and "x" or 1) end end))
print("concat", pcall(function() local s = "" for i = 1, 6000 do s = (i == 6000 and {} or "a") .. "b" end end))
print("for init", pcall(function() for i = "a", 2 do end end))
print("for step", pcall(function() for i = 1, 10, 0 do end end))

-- Errors in metamethods.
local mt = {
  __add = function(a, b)
    if type(b) == "number" and b > 5000 then error("too big: " .. b) end
    return setmetatable({v = a.v + (type(b) == "number" and b or b.v)}, getmetatable(a))
  end,
  __index = function(_, k) error("no field " .. tostring(k)) end,
}
local obj = setmetatable({v = 0}, mt)
print("meta add", pcall(function() local o = obj for i = 1, 10000 do o = o + i end return o.v end))
print("meta index", pcall(function() return obj.missing end))

-- xpcall with a handler that keeps only the message's first line and the
-- traceback's depth, never addresses.
local function handler(e)
  local tb = debug.traceback(tostring(e), 1)
  local first = tb:match("^[^\n]*")
  local lines = select(2, tb:gsub("\n", "\n"))
  return first .. " (traceback has lines: " .. tostring(lines > 2) .. ")"
end
local function deep(n) if n == 0 then error("deep error") end return (deep(n - 1)) end
print("xpcall", xpcall(deep, handler, 50))
print("xpcall ok", xpcall(function(a, b) return a + b end, handler, 20, 22))
print("xpcall loop", xpcall(failAt, handler, 7000))
-- An error inside the handler.
print("handler error", xpcall(error, function() error("again") end, "x"))

-- Nested pcall in a loop, rethrowing.
local depth = 0
for i = 1, 6000 do
  local ok, e = pcall(function()
    local ok2, e2 = pcall(error, "inner" .. i, 0)
    error(e2 .. "+outer", 0)
  end)
  if not ok and e == "inner" .. i .. "+outer" then depth = depth + 1 end
end
print("rethrow", depth)

-- error() with a table that has __tostring, caught by pcall.
local eobj = setmetatable({}, {__tostring = function() return "custom error object" end})
local ok, e = pcall(error, eobj)
print("tostring error", ok, tostring(e), e == eobj)
-- assert with messages.
print("assert", pcall(assert, false, "assert message"))
print("assert nil", pcall(assert, nil))
print("assert ok", pcall(assert, 1, 2, 3))

-- debug.sethook switched on in the middle of a hot loop and off again.
local hits = 0
local function counthook() hits = hits + 1 end

local s = 0
for i = 1, 60000 do
  s = s + i % 7
  if i == 20000 then debug.sethook(counthook, "", 1) end
  if i == 40000 then debug.sethook() end
end
print("count hook every instruction", s, hits)

hits = 0
local w, i = 0, 0
while i < 60000 do
  i = i + 1
  w = w + i % 5
  if i == 15000 then debug.sethook(counthook, "", 100) end
  if i == 45000 then debug.sethook() end
end
print("count hook every 100", w, hits)

-- A call hook that counts calls and returns.
local calls, returns = 0, 0
local function callhook(ev)
  if ev == "call" or ev == "tail call" then calls = calls + 1 else returns = returns + 1 end
end
local function f(x) return x + 1 end
local t = 0
for k = 1, 40000 do
  t = f(t)
  if k == 10000 then debug.sethook(callhook, "cr") end
  if k == 30000 then debug.sethook() end
end
print("call hook", t, calls, returns)

-- A line hook switched on inside a generic for.
local lines = 0
local function linehook() lines = lines + 1 end
local arr = {}
for k = 1, 30000 do arr[k] = k end
local g = 0
for k, v in ipairs(arr) do
  g = g + v
  if k == 10000 then debug.sethook(linehook, "l") end
  if k == 12000 then debug.sethook() end
end
print("line hook", g, lines)

-- The hook reports the current line of the loop body.
local seen = {}
local function where() local info = debug.getinfo(2, "l"); seen[info.currentline] = true end
local z = 0
for k = 1, 20000 do
  z = z + k
  if k == 5000 then debug.sethook(where, "l") end
  if k == 5003 then debug.sethook() end
end
local ls = {}
for line in pairs(seen) do ls[#ls + 1] = line end
table.sort(ls)
print("lines seen", z, table.concat(ls, ","))

-- A hook that raises an error stops the loop at a known iteration.
local n = 0
local ok, err = pcall(function()
  for k = 1, 100000 do
    n = k
    if k == 50000 then
      debug.sethook(function() error("hook stop") end, "", 1000)
    end
  end
end)
debug.sethook()
print("hook error", ok, (tostring(err):find("hook stop", 1, true) ~= nil), n > 50000, n < 50000 + 1000)

-- debug.gethook reflects the state.
debug.sethook(counthook, "c", 5)
local _, mask, count = debug.gethook()
debug.sethook()
print("gethook", mask, count, debug.gethook())

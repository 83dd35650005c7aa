-- The Lua stack reallocated under a hot loop, debug information read
-- from inside traces (current lines, tracebacks), locals changed by a
-- hook, and for loops with NaN and huge float limits.
-- deep() grows the Lua stack (a reallocation) in the middle of the loop.
local function deep(n) if n == 0 then return 0 end return 1 + deep(n - 1) end
local s, a, b, c = 0, 1, 2, 3
for i = 1, 20000 do
  s = s + a + b + c + i
  if i % 5000 == 0 then s = s + deep(30000 + i) end
  if i % 3000 == 0 then collectgarbage() end
end
print(s, a, b, c)
local lines = {}
for i = 1, 6000 do
  local info = debug.getinfo(1, "l")
  lines[info.currentline] = (lines[info.currentline] or 0) + 1
  if i % 1000 == 0 then
    local l2 = debug.getinfo(1, "l").currentline
    lines[l2] = (lines[l2] or 0) + 1
  end
end
local ks = {} for k, v in pairs(lines) do ks[#ks+1] = k .. ":" .. v end table.sort(ks) print(table.concat(ks, " "))
local tb = {}
for i = 1, 6000 do
  if i % 1500 == 0 then tb[#tb+1] = debug.traceback("at " .. i, 1):gsub("\n.*", "") .. "|" .. debug.traceback():match("[%w_]+%.lua:%d+") end
end
print(table.concat(tb, ","))
-- debug.setlocal from a hook changes the loop's locals.
local x = 0
local function hk()
  local name, val = debug.getlocal(2, 1)
  for j = 1, 20 do
    local n, v = debug.getlocal(2, j)
    if n == "x" then debug.setlocal(2, j, v + 1000) end
    if not n then break end
  end
end
for i = 1, 30000 do
  x = x + 1
  if i == 20000 then debug.sethook(hk, "", 997) end
  if i == 25000 then debug.sethook() end
end
print("x", x)
-- for loop with NaN / inf limits
local n = 0
for i = 1, 0/0 do n = n + 1 end
for i = 1.0, 1e308, 1e304 do n = n + 1 end
for i = 1, 1e308, 2^1000 do n = n + 1 if n > 10000 then break end end
print("nan", n)

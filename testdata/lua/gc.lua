-- GC pressure: tables, strings and closures allocated in loops, with
-- explicit collections inside the loops. collectgarbage("count") is not
-- printed: it differs between runs.
local keep = {}
local s = 0
for i = 1, 60000 do
  local t = {i, i * 2, name = "n" .. i}
  s = s + t[1] + t[2] + #t.name
  if i % 10 == 0 then keep[#keep + 1] = t end
  if i % 15000 == 0 then collectgarbage() end
end
print("alloc", s, #keep)

-- Weak tables: entries whose keys are gone disappear after a full cycle.
local weak = setmetatable({}, {__mode = "k"})
local strong = {}
for i = 1, 10000 do
  local k = {}
  weak[k] = i
  if i % 4 == 0 then strong[#strong + 1] = k end
end
collectgarbage()
collectgarbage()
local wn, ws = 0, 0
for _, v in pairs(weak) do wn = wn + 1; ws = ws + v end
print("weak keys", wn, ws)
local wv = setmetatable({}, {__mode = "v"})
for i = 1, 10000 do wv[i] = (i % 2 == 0) and strong[i // 4 + 1] or {} end
collectgarbage()
local live = 0
for i = 1, 10000 do if wv[i] ~= nil then live = live + 1 end end
print("weak values", live)

-- __gc finalizers: run order is deterministic for a full collection.
local finalized = 0
local order = {}
for i = 1, 6000 do
  setmetatable({}, {__gc = function() finalized = finalized + 1; if i % 1000 == 0 then order[#order + 1] = i end end})
end
collectgarbage()
collectgarbage()
table.sort(order)
print("finalized", finalized, table.concat(order, ","))

-- Generational and incremental modes, and step calls inside a loop.
print("mode", collectgarbage("generational"))
local g = 0
for i = 1, 40000 do
  local t = {tostring(i)}
  g = g + #t[1]
  if i % 5000 == 0 then collectgarbage("step", 10) end
end
print("generational", g)
print("mode", collectgarbage("incremental"))
for i = 1, 30000 do
  local str = string.rep("x", i % 50) .. i
  g = g + #str
  if i % 3000 == 0 then collectgarbage("collect") end
end
print("incremental", g, collectgarbage("isrunning"))
collectgarbage("stop")
for i = 1, 10000 do local _ = {i} end
print("stopped", collectgarbage("isrunning"))
collectgarbage("restart")

-- A growing and shrinking structure.
local list = {}
for round = 1, 10 do
  for i = 1, 5000 do list[#list + 1] = {round, i} end
  for i = 1, 2500 do list[#list] = nil end
  collectgarbage("step")
end
local ls = 0
for _, p in ipairs(list) do ls = ls + p[1] * p[2] end
print("list", #list, ls)

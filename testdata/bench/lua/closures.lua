-- closures.lua N: table- and closure-heavy code: counters captured in
-- closures, kept in a hash table under string keys, and records in arrays.
local function make_counter(k)
  local c = 0
  return function(x)
    c = c + x * k
    return c
  end
end

local n = tonumber(arg and arg[1]) or 100000
local t = {}
local records = {}
for i = 1, n do
  local key = "k" .. (i % 1000)
  local f = t[key]
  if not f then
    f = make_counter(i % 7 + 1)
    t[key] = f
  end
  f(i % 13)
  local r = records[i % 500 + 1]
  if r then
    r.count = r.count + 1
    r.sum = r.sum + i % 101
  else
    records[i % 500 + 1] = {count = 1, sum = i % 101}
  end
end
local total = 0
for i = 0, 999 do
  local f = t["k" .. i]
  if f then total = total + f(0) end
end
local rs = 0
for i = 1, #records do rs = rs + records[i].count * 3 + records[i].sum end
print(string.format("%d %d %d", total, rs, #records))

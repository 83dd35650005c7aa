-- strings.lua N: string building: format, repeat, join and search.
local n = tonumber(arg and arg[1]) or 100000
local parts = {}
for i = 1, n do
  parts[#parts + 1] = string.format("%d:%s", i, string.rep("x", i % 5))
end
local s = table.concat(parts, ",")
local _, sevens = s:gsub("7", "")
local acc = ""
for i = 1, n % 1000 + 200 do
  acc = acc .. string.char(97 + i % 26)
end
local up = string.upper(acc)
print(string.format("%d %d %d %s", #s, sevens, #acc, string.sub(up, 1, 30)))

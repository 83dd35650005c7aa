-- String building: table.concat, string.format, gsub with functions,
-- rep, byte/char, find/match.
local parts = {}
for i = 1, 20000 do parts[#parts + 1] = tostring(i % 97) end
local s = table.concat(parts, ",")
print("concat", #s, s:sub(1, 30), s:sub(-20))

local function checksum(str)
  local h = 0
  for i = 1, #str do h = (h * 31 + str:byte(i)) % 4294967296 end
  return h
end
print("checksum", checksum(s))

-- Repeated .. in a loop (quadratic but small).
local acc = ""
for i = 1, 5000 do acc = acc .. string.char(65 + i % 26) end
print("append", #acc, checksum(acc))

-- string.format in a hot loop with many conversions.
local fmt = {}
for i = 1, 8000 do
  fmt[#fmt + 1] = string.format("%5d|%-6s|%8.3f|%x|%q|%g|%e", i, "s" .. i % 10, i / 7, i * 255, "q" .. i, i / 3, i * 1.5)
end
local all = table.concat(fmt, "\n")
print("format", #all, checksum(all))
print(fmt[1])
print(fmt[8000])
print(string.format("%.14g %.17g %a", 0.1, 1 / 3, 1.0))
print(string.format("%10.4s|%-10s|%%|%c", "abcdefg", "x", 72))
print(string.format("%i %u", 42, 42) == nil)

-- gsub with a function, a table and a pattern.
local text = string.rep("the quick brown fox jumps over the lazy dog ", 500)
local counts = {}
local replaced, n = text:gsub("%a+", function(w)
  counts[w] = (counts[w] or 0) + 1
  if #w > 4 then return w:upper() end
end)
print("gsub func", n, #replaced, checksum(replaced), counts.the, counts.fox)
local vowels = {a = "1", e = "2", i = "3", o = "4", u = "5"}
local r2, n2 = text:gsub("[aeiou]", vowels)
print("gsub table", n2, checksum(r2))
local r3, n3 = text:gsub("(%a+) (%a+)", "%2 %1", 300)
print("gsub pattern", n3, checksum(r3))

-- find and match in a loop.
local found = 0
for i = 1, 10000 do
  local str = "item-" .. i .. "-end"
  local a, b, num = str:find("%-(%d+)%-")
  if tonumber(num) == i and a == 5 then found = found + 1 end
end
print("find", found)
local dates = {}
for i = 1, 6000 do dates[i] = string.format("%04d-%02d-%02d", 2000 + i % 30, 1 + i % 12, 1 + i % 28) end
local ys = 0
for _, d in ipairs(dates) do
  local y, m, dd = d:match("^(%d+)-(%d+)-(%d+)$")
  ys = ys + tonumber(y) * 10000 + tonumber(m) * 100 + tonumber(dd)
end
print("match", ys)

-- byte/char/rep/reverse/upper/lower round trips.
local bytes = {}
for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
local bs = table.concat(bytes)
local rt = 0
for round = 1, 40 do
  local r = bs:reverse():reverse()
  for i = 1, #r, 8 do rt = rt + r:byte(i) end
end
print("bytes", #bs, rt, checksum(bs:upper()), checksum(bs:lower()))
print("rep", #string.rep("ab", 10000, "--"), checksum(string.rep("xyz", 3000)))

-- Number to string conversions: integers, floats, -0.0, inf, nan.
local conv = {}
for i = -3000, 3000, 7 do conv[#conv + 1] = tostring(i) .. tostring(i / 4) .. tostring(i * 1e15) end
print("tostring", checksum(table.concat(conv)))
print(1e15, 1e16, 2^53, 2^63, -0.0, 1/0, -1/0, math.pi, 100 // 1.0, 3 % -2, -3 % 2, 3.5 % -2)
print(math.maxinteger + 1 == math.mininteger, math.maxinteger * 2, 7 // 0.0, -7 // 0.0, 0/0 ~= 0/0)
print(tonumber("0x10"), tonumber("  12  "), tonumber("1e2"), tonumber("10", 2), tonumber("zz", 36), tonumber("8", 8))
print(string.pack and #string.pack("i4i8d", 1, 2, 3.0), ("%d"):format(3.0), utf8.char(72, 228, 8364, 128512), utf8.len("häll€"))

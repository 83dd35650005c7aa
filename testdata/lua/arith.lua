-- Integer and float arithmetic corner cases in hot loops: wraparound,
-- floor division and modulo signs, bitwise ops, conversions.
local function h(acc, v) return (acc * 1000003 ~ v) & 0xffffffffffff end
local acc = 0
for i = -20000, 20000, 3 do
  local a, b = i, (i % 97) - 48
  if b == 0 then b = 1 end
  acc = h(acc, a // b)
  acc = h(acc, a % b)
  acc = h(acc, (a * 7919) >> 3)
  acc = h(acc, a << (i & 15))
  acc = h(acc, ~a)
  acc = h(acc, a | b)
  acc = h(acc, math.tointeger(a / b * b) or 0)
end
print("int ops", acc)

local f = 0.0
local fl = {}
for i = 1, 30000 do
  local x = i / 3.0 - 5000.0
  f = f + x % 7.5 + x // 2.5 + math.floor(x) + math.ceil(-x) + math.fmod(x, 3) + math.sqrt(i) + x ^ 2 / 1e6
  if i % 5000 == 0 then fl[#fl + 1] = string.format("%.12g", f) end
end
print("float ops", table.concat(fl, " "))

-- Wraparound.
local w = math.maxinteger - 5000
local wraps = 0
for _ = 1, 10000 do
  w = w + 1
  if w < 0 then wraps = wraps + 1 end
end
print("wrap", w, wraps)
local m = 1
for i = 1, 6000 do m = m * 3 + i end
print("mul wrap", m)

-- Integer/float comparisons and equality, including large values.
local eq, lt = 0, 0
for i = 1, 20000 do
  local fi = i + 0.0
  if fi == i then eq = eq + 1 end
  if i < fi + 0.5 then lt = lt + 1 end
  if (2^53 + i) == (2^53 + i) // 1 then eq = eq + 1 end
  if math.maxinteger < 2^63 then lt = lt + 1 end
  if math.mininteger <= -2^63 then lt = lt + 1 end
end
print("compare", eq, lt)

-- Float to integer conversions and math functions.
local conv = 0
for i = 1, 20000 do
  local x = i * 0.5
  local n = math.tointeger(x)
  if n then conv = conv + n else conv = conv - 1 end
  conv = conv + (math.floor(x) | 0) + math.abs(-i) + math.max(i, 10000) - math.min(i, 10000) + (math.ult(i, 15000) and 1 or 0)
end
print("convert", conv)
local tr = 0.0
for i = 1, 20000 do tr = tr + math.sin(i) * math.cos(i) + math.log(i) - math.exp(i / 20000) + math.atan(i, 3) end
print("transcendental", string.format("%.10f", tr))
print(math.type(1), math.type(1.0), math.type("1"), 3 | 0, pcall(function() return 3.5 | 0 end))
print(pcall(function() local z = 0 return 1 // z end))
print(-7 // 2, -7 % 2, 7 // -2, 7 % -2, -7.0 // 2, -7.0 % 2, 7.5 % -2, -0.0 == 0.0, math.huge // 1, 5 % math.huge, -5 % math.huge)
print(string.format("%.17g %.17g", 0.1 + 0.2, 1e300 * 1e10), 2^-1074, math.mininteger // -1, math.mininteger % -1)

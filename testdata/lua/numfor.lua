-- Numeric for loops: integer and float steps, negative steps, large
-- counts, bodies that modify tables.
local s = 0
for i = 1, 200000 do s = s + i % 13 end
print("int", s)

local x = 0.0
for f = 0.0, 1000.0, 0.125 do x = x + f * 0.5 end
print("float step", string.format("%.6f", x))

local d = 0
for i = 100000, 1, -3 do d = d + i end
print("neg step", d)

local fd = 0.0
for f = 50.0, -50.0, -0.25 do fd = fd + f * f end
print("neg float", string.format("%.4f", fd))

-- Integer loop with a float limit, and a float loop with integer bounds.
local c = 0
for i = 1, 10000.5 do c = c + i end
print("float limit", c, math.type(c))
local fc = 0
for i = 1.0, 10000 do fc = fc + i end
print("float var", fc, math.type(fc))

-- A large count with a tiny body.
local n = 0
for _ = 1, 1000000 do n = n + 1 end
print("large", n)

-- Near the integer limits: the loop must stop without overflowing.
local m = 0
for i = math.maxinteger - 6000, math.maxinteger do m = m + 1 end
print("maxint", m)
local k = 0
for i = math.mininteger + 6000, math.mininteger, -1 do k = k + 1 end
print("minint", k)
-- Loops that do not run at all.
local z = 0
for i = 10, 1 do z = z + 1 end
for i = 1, 10, -1 do z = z + 1 end
print("empty", z)

-- Bodies that write, grow and shrink tables.
local t = {}
for i = 1, 30000 do t[i] = i * 2 end
for i = #t, 1, -2 do t[i] = nil end
local cnt, sum = 0, 0
for i = 1, 30000 do
  if t[i] then cnt = cnt + 1; sum = sum + t[i] end
end
print("table", cnt, sum, #t % 2)
local h = {}
for i = 1, 20000 do h["k" .. (i % 977)] = (h["k" .. (i % 977)] or 0) + i end
local hs = 0
for i = 0, 976 do hs = hs + h["k" .. i] end
print("hash", hs)

-- The control variable is a copy: assigning it does not change the loop.
local iters = 0
for i = 1, 10000 do
  local j = i
  i = i * 100
  iters = iters + (i // 100 == j and 1 or 0)
end
print("copy", iters)

-- Step computed at run time, and nested with dependent bounds.
local step = tonumber("7")
local a = 0
for i = -50000, 50000, step do a = a ~ i end
print("xor", a)
local tri = 0
for i = 1, 300 do for j = i, 300 do tri = tri + 1 end end
print("tri", tri)

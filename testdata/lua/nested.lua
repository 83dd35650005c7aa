-- Nested loops of different kinds and depths.
local function matmul(a, b, n)
  local c = {}
  for i = 1, n do
    local ci, ai = {}, a[i]
    for j = 1, n do
      local sum = 0
      for k = 1, n do sum = sum + ai[k] * b[k][j] end
      ci[j] = sum
    end
    c[i] = ci
  end
  return c
end
local n = 40
local a, b = {}, {}
for i = 1, n do
  a[i], b[i] = {}, {}
  for j = 1, n do a[i][j] = (i + j) % 7; b[i][j] = (i * j) % 5 end
end
local c = matmul(a, b, n)
local tr = 0
for i = 1, n do tr = tr + c[i][i] + c[i][n - i + 1] end
print("matmul", tr)

-- Float matrix.
local fa = {}
for i = 1, n do fa[i] = {} for j = 1, n do fa[i][j] = 1 / (i + j - 1) end end
local fc = matmul(fa, fa, n)
local ft = 0
for i = 1, n do ft = ft + fc[i][i] end
print("hilbert", string.format("%.10f", ft))

-- Four levels, with breaks in the inner ones.
local count = 0
for i = 1, 20 do
  for j = 1, 20 do
    local k = 0
    while k < 20 do
      k = k + 1
      local l = 0
      repeat
        l = l + 1
        if (i + j + k + l) % 13 == 0 then break end
        count = count + 1
      until l >= 20
    end
  end
end
print("four", count)

-- Inner loop whose trip count changes each outer iteration.
local tot = 0
for i = 1, 3000 do
  for j = 1, i % 37 do tot = tot + j end
end
print("varying", tot)

-- Sieve.
local N = 100000
local comp = {}
local primes = 0
for i = 2, N do
  if not comp[i] then
    primes = primes + 1
    for j = i * i, N, i do comp[j] = true end
  end
end
print("sieve", primes)

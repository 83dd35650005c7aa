-- spectralnorm.lua N: spectral norm of the infinite matrix A, N x N part.
local function A(i, j)
  local ij = i + j
  return 1.0 / (ij * (ij + 1) / 2 + i + 1)
end

local function Av(x, y, n)
  for i = 0, n - 1 do
    local a = 0.0
    for j = 0, n - 1 do a = a + A(i, j) * x[j] end
    y[i] = a
  end
end

local function Atv(x, y, n)
  for i = 0, n - 1 do
    local a = 0.0
    for j = 0, n - 1 do a = a + A(j, i) * x[j] end
    y[i] = a
  end
end

local function AtAv(x, y, t, n)
  Av(x, t, n)
  Atv(t, y, n)
end

local n = tonumber(arg and arg[1]) or 100
local u, v, t = {}, {}, {}
for i = 0, n - 1 do u[i] = 1.0 end
for _ = 1, 10 do
  AtAv(u, v, t, n)
  AtAv(v, u, t, n)
end
local vBv, vv = 0.0, 0.0
for i = 0, n - 1 do
  local ui, vi = u[i], v[i]
  vBv = vBv + ui * vi
  vv = vv + vi * vi
end
print(string.format("%.9f", math.sqrt(vBv / vv)))

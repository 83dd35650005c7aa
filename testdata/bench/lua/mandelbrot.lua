-- mandelbrot.lua N: counts the points of an N x N grid over [-1.5,0.5]x[-1,1]
-- that stay bounded for 50 iterations, and a position checksum.
local n = tonumber(arg and arg[1]) or 200
local inside, check = 0, 0
for y = 0, n - 1 do
  local ci = 2.0 * y / n - 1.0
  for x = 0, n - 1 do
    local cr = 2.0 * x / n - 1.5
    local zr, zi, zr2, zi2 = 0.0, 0.0, 0.0, 0.0
    local escaped = false
    for _ = 1, 50 do
      zi = 2.0 * zr * zi + ci
      zr = zr2 - zi2 + cr
      zr2 = zr * zr
      zi2 = zi * zi
      if zr2 + zi2 > 4.0 then
        escaped = true
        break
      end
    end
    if not escaped then
      inside = inside + 1
      check = (check + x * 31 + y) % 1000003
    end
  end
end
print(string.format("%d %d", inside, check))

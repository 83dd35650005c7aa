-- A top-level error whose object is a table without __tostring, raised
-- from a hot loop after output without a newline.
io.write("partial output")
local s = 0
for n = 1, 1000000 do
  s = s + n % 5
  if n == 9999 then error({code = n, sum = s}) end
end

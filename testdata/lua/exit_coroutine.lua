-- os.exit from inside a coroutine resumed by a hot loop, after a hot loop
-- of its own.
local co = coroutine.wrap(function()
  for i = 1, 100000 do
    if i == 54321 then
      local s = 0
      for j = 1, 20000 do s = s + j % 13 end
      io.write("co exit ", i, " ", s, "\n")
      os.exit(s % 100 + 1)
    end
    coroutine.yield(i)
  end
end)
local t = 0
for i = 1, 200000 do t = t + co() end

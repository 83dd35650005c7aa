-- os.exit with a code from inside a hot loop: buffered output is flushed,
-- the code reaches the parent.
local s = 0
for i = 1, 100000 do
  s = s + i % 11
  if i == 76543 then
    io.write("exiting at ", i, " with sum ", s, "\n")
    io.stderr:write("to stderr before exit\n")
    os.exit(s % 200 + 3)
  end
end
print("not reached")

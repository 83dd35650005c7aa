-- An error at top level, raised inside a hot loop: the interpreter
-- prints the message and traceback on stderr and exits with status 1.
local t = {}
for i = 1, 50000 do
  t[i] = i * 3
end
print("filled", #t)
local s = 0
for i = 1, 60000 do
  s = s + t[i]   -- t[50001] is nil
end
print("not reached", s)

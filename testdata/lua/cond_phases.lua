-- A program in phases for the comparison sites that put themselves back:
-- first only comparisons that jump forward (a recursion with no loop), so
-- the OP_LTI site closes no loop and is put back; then a loop becomes hot
-- (the sites are re-armed) and a repeat-until loop closes at OP_LTI.
local function fib(n) if n < 2 then return n end return fib(n - 1) + fib(n - 2) end
print("fib", fib(24))

local s = 0
for k = 1, 5000 do s = s + k % 3 end
print("warm", s)

local total = 0
for round = 1, 2000 do
  local i = 0
  repeat
    i = i + 1
    total = total + i % 5
  until not (i < 100)
end
print("repeat", total)

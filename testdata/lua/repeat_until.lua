-- repeat-until loops: Lua closes them inside the comparison or test that
-- ends the body (it takes the jump back itself, without dispatching
-- OP_JMP), so they are counted and traced at that comparison. The first
-- loop runs n times; the others take other closing tests.
local n = tonumber(arg and arg[1]) or 200000

local function count(n)
  local i, s = 0, 0
  repeat
    s = s + i % 7
    i = i + 1
  until i >= n
  return s
end
print("count", count(n))

-- Closed by a test (OP_TEST) on a local of the body.
local function until_flag(n)
  local k, acc = 0, 0
  repeat
    k = k + 1
    acc = acc + (k % 3 == 0 and k or 1)
    local done = k >= n // 4
  until done
  return k, acc
end
print("flag", until_flag(n))

-- Closed by an equality, with a method call in the body, inside a for.
local Acc = {}
Acc.__index = Acc
function Acc:add(v) self.total = self.total + v end
local a = setmetatable({ total = 0 }, Acc)
for round = 1, 4 do
  local x = round
  repeat
    a:add(x)
    x = (x * 7 + 3) % 1009
  until x == round
end
print("cycle", a.total)

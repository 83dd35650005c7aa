-- Loops that close with several back jumps to one header: a while body
-- ending in an if/elseif chain (each branch jumps back on its own), and a
-- dispatch loop over a small instruction array, the shape of an
-- interpreter written in Lua. Each is one loop, traced once.
local n = tonumber(arg and arg[1]) or 200000

local function chain(n)
  local i, a, b, c, d = 0, 0, 0, 0, 0
  while i < n do
    i = i + 1
    local r = i % 4
    if r == 0 then
      a = a + i
    elseif r == 1 then
      b = b + 2 * i
    elseif r == 2 then
      c = c - i
    else
      d = d + 1
    end
  end
  return i, a, b, c, d
end

local function dispatch(code, steps)
  local pc, acc, x, count = 1, 0, 1, 0
  while count < steps do
    count = count + 1
    local ins = code[pc]
    local op = ins[1]
    pc = pc + 1
    if op == "add" then
      acc = acc + ins[2]
    elseif op == "mul" then
      acc = (acc * ins[2]) % 1000003
    elseif op == "swap" then
      acc, x = x, acc
    elseif op == "jnz" then
      if acc % 3 ~= 0 then pc = ins[2] end
    elseif op == "jmp" then
      pc = ins[2]
    end
  end
  return acc, x, pc
end

print(chain(n))
local prog = { {"add", 7}, {"mul", 31}, {"swap"}, {"add", 3}, {"jnz", 1}, {"mul", 5}, {"jmp", 2} }
print(dispatch(prog, n))
print(chain(n // 3))

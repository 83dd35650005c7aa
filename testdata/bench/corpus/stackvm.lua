-- sizes: 200 15
-- A small Forth-like stack language: a tokenizer, a compiler that turns
-- source into flat instruction arrays (with resolved jumps for if/else/then,
-- begin/until and do/loop, and user-defined words), and an interpreter loop
-- dispatching through a table of primitive closures on a VM object. Runs
-- several programs (gcd, fib, prime counting, collatz, sorting an array).

local VM = {}
VM.__index = VM

function VM.new()
  local vm = setmetatable({ stack = {}, sp = 0, rstack = {}, rp = 0, words = {},
    memory = {}, out = {}, steps = 0 }, VM)
  return vm
end

function VM:push(v)
  local sp = self.sp + 1
  self.sp = sp
  self.stack[sp] = v
end

function VM:pop()
  local sp = self.sp
  if sp == 0 then error("stack underflow") end
  self.sp = sp - 1
  return self.stack[sp]
end

local PRIMS = {}
local function binary(f) return function(vm) local b = vm:pop(); vm:push(f(vm:pop(), b)) end end
PRIMS["+"] = binary(function(a, b) return a + b end)
PRIMS["-"] = binary(function(a, b) return a - b end)
PRIMS["*"] = binary(function(a, b) return a * b end)
PRIMS["/"] = binary(function(a, b) return a // b end)
PRIMS["mod"] = binary(function(a, b) return a % b end)
PRIMS["="] = binary(function(a, b) return a == b and -1 or 0 end)
PRIMS["<"] = binary(function(a, b) return a < b and -1 or 0 end)
PRIMS[">"] = binary(function(a, b) return a > b and -1 or 0 end)
PRIMS["and"] = binary(function(a, b) return (a ~= 0 and b ~= 0) and -1 or 0 end)
PRIMS["max"] = binary(math.max)
PRIMS["min"] = binary(math.min)
PRIMS["dup"] = function(vm) local v = vm:pop(); vm:push(v); vm:push(v) end
PRIMS["drop"] = function(vm) vm:pop() end
PRIMS["swap"] = function(vm) local b, a = vm:pop(), vm:pop(); vm:push(b); vm:push(a) end
PRIMS["over"] = function(vm) local b, a = vm:pop(), vm:pop(); vm:push(a); vm:push(b); vm:push(a) end
PRIMS["rot"] = function(vm) local c, b, a = vm:pop(), vm:pop(), vm:pop(); vm:push(b); vm:push(c); vm:push(a) end
PRIMS["@"] = function(vm) vm:push(vm.memory[vm:pop()] or 0) end
PRIMS["!"] = function(vm) local addr = vm:pop(); vm.memory[addr] = vm:pop() end
PRIMS["+!"] = function(vm) local addr = vm:pop(); vm.memory[addr] = (vm.memory[addr] or 0) + vm:pop() end
PRIMS["."] = function(vm) vm.out[#vm.out + 1] = tostring(vm:pop()) end
PRIMS["i"] = function(vm) vm:push(vm.rstack[vm.rp]) end
PRIMS["j"] = function(vm) vm:push(vm.rstack[vm.rp - 2]) end

---------------------------------------------------------------- compiler
-- instructions: { op = "lit"|"prim"|"call"|"jz"|"jmp"|"do"|"loop", arg = ... }
function VM:compile(tokens, i, stop)
  local code, control = {}, {}
  while i <= #tokens do
    local tok = tokens[i]
    i = i + 1
    if tok == stop then break end
    local num = tonumber(tok)
    if num then
      code[#code + 1] = { op = "lit", arg = num }
    elseif tok == ":" then
      local name = tokens[i]
      local body
      body, i = self:compile(tokens, i + 1, ";")
      self.words[name] = body
    elseif tok == "if" then
      code[#code + 1] = { op = "jz" }
      control[#control + 1] = #code
    elseif tok == "else" then
      code[#code + 1] = { op = "jmp" }
      code[table.remove(control)].arg = #code + 1
      control[#control + 1] = #code
    elseif tok == "then" then
      code[table.remove(control)].arg = #code + 1
    elseif tok == "begin" then
      control[#control + 1] = #code + 1
    elseif tok == "until" then
      code[#code + 1] = { op = "jz", arg = table.remove(control) }
    elseif tok == "do" then
      code[#code + 1] = { op = "do" }
      control[#control + 1] = #code + 1
    elseif tok == "loop" then
      code[#code + 1] = { op = "loop", arg = table.remove(control) }
    elseif PRIMS[tok] then
      code[#code + 1] = { op = "prim", arg = PRIMS[tok], name = tok }
    elseif self.words[tok] then
      code[#code + 1] = { op = "call", arg = tok }
    else
      error("unknown word " .. tok)
    end
  end
  return code, i
end

function VM:execute(code)
  local pc, n = 1, #code
  while pc <= n do
    local ins = code[pc]
    local op = ins.op
    self.steps = self.steps + 1
    pc = pc + 1
    if op == "lit" then
      self:push(ins.arg)
    elseif op == "prim" then
      ins.arg(self)
    elseif op == "call" then
      self:execute(self.words[ins.arg])
    elseif op == "jz" then
      if self:pop() == 0 then pc = ins.arg end
    elseif op == "jmp" then
      pc = ins.arg
    elseif op == "do" then
      local start, limit = self:pop(), self:pop()
      self.rp = self.rp + 2
      self.rstack[self.rp - 1], self.rstack[self.rp] = limit, start
      if start >= limit then -- skip an empty loop
        local depth = 1
        while depth > 0 do
          local o = code[pc].op
          if o == "do" then depth = depth + 1 elseif o == "loop" then depth = depth - 1 end
          pc = pc + 1
        end
        self.rp = self.rp - 2
      end
    elseif op == "loop" then
      local idx = self.rstack[self.rp] + 1
      if idx < self.rstack[self.rp - 1] then
        self.rstack[self.rp] = idx
        pc = ins.arg
      else
        self.rp = self.rp - 2
      end
    end
  end
end

function VM:run(source)
  local tokens = {}
  for tok in source:gsub("%(.-%)", " "):gmatch("%S+") do tokens[#tokens + 1] = tok:lower() end
  local code = self:compile(tokens, 1)
  self:execute(code)
  return table.concat(self.out, " ")
end

---------------------------------------------------------------- programs
local LIB = [[
: gcd ( a b -- g ) begin swap over mod dup 0 = until drop ;
: fib ( n -- f ) 0 1 rot 0 do swap over + 1000000007 mod loop drop ;
: divides? ( n d -- flag ) mod 0 = ;
: prime? ( n -- flag )
    -1 swap dup 2 do dup i divides? if swap drop 0 swap then loop drop ;
: step ( n -- n' ) dup 2 mod if 3 * 1 + else 2 / then ;
: collatz ( n -- steps ) 0 swap begin step swap 1 + swap dup 1 = until drop ;
: sum-to ( n -- s ) 0 swap 0 do i + loop ;
: fill ( n -- ) 0 do i 7919 * 10007 mod i ! loop ;
: sorted? ( n -- flag ) -1 swap 1 do i 1 - @ i @ > if drop 0 then loop ;
: bubble ( n -- ) dup 0 do dup 1 do
    i 1 - @ i @ > if i 1 - @ i @ i 1 - ! i ! then loop loop drop ;
]]

local n = tonumber(arg and arg[1]) or 200
local vm = VM.new()
vm:run(LIB)

local function run(fmt, ...)
  vm.out = {}
  return vm:run(string.format(fmt, ...))
end

local out = {
  run("%d %d gcd .", 1071 * n, 462 * n),
  run("%d fib .", n * 20),
  run("0 %d 2 do i prime? if 1 + then loop .", n * 2),
  run("0 %d 1 do i collatz max loop .", n * 20),
  run("%d sum-to .", n * 50),
  run("%d fill %d sorted? . %d bubble %d sorted? . 0 @ . %d @ .", n, n, n, n, n - 1),
}

for i, line in ipairs(out) do print("program " .. i .. ": " .. line) end
local defined = 0
for _ in pairs(vm.words) do defined = defined + 1 end
print("words defined", defined)
print("instructions executed", vm.steps, "stack depth", vm.sp)
print("done")

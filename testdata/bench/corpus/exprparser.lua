-- sizes: 4500 250
-- A tokenizer, recursive-descent parser and tree-walking evaluator for a tiny
-- expression language: integers, + - * / %, unary minus, parentheses,
-- comparisons, `let x = e in e`, `if c then a else b` and builtin calls
-- (min, max, abs). AST nodes are objects with eval/show methods; scopes are
-- metatable-chained environments. Random programs are generated, parsed,
-- evaluated, pretty-printed, re-parsed and re-evaluated.

local MOD = 1000003
local unpack = table.unpack or unpack

---------------------------------------------------------------- lexer
local Lexer = {}
Lexer.__index = Lexer

local KEYWORDS = { let = true, ["in"] = true, ["if"] = true, ["then"] = true, ["else"] = true }

function Lexer.new(src)
  local self = setmetatable({ tokens = {}, i = 1 }, Lexer)
  local pos, len = 1, #src
  while true do
    pos = src:find("%S", pos)
    if not pos then break end
    local s, e = src:find("^%d+", pos)
    if s then
      self.tokens[#self.tokens + 1] = { kind = "num", value = tonumber(src:sub(s, e)) }
    else
      s, e = src:find("^[%a_][%w_]*", pos)
      if s then
        local word = src:sub(s, e)
        self.tokens[#self.tokens + 1] = { kind = KEYWORDS[word] and word or "name", value = word }
      else
        s, e = src:find("^[<>=]=", pos)
        if not s then s, e = pos, pos end
        local op = src:sub(s, e)
        if not op:find("^[-+*/%%()<>=,]") then error("unexpected character " .. op) end
        self.tokens[#self.tokens + 1] = { kind = op, value = op }
      end
    end
    pos = e + 1
  end
  self.tokens[#self.tokens + 1] = { kind = "eof" }
  return self
end

function Lexer:peek() return self.tokens[self.i].kind end
function Lexer:next()
  local t = self.tokens[self.i]
  self.i = self.i + 1
  return t
end
function Lexer:expect(kind)
  local t = self:next()
  if t.kind ~= kind then error("expected " .. kind .. " got " .. t.kind) end
  return t
end

---------------------------------------------------------------- AST
local function node(name)
  local cls = { name = name }
  cls.__index = cls
  cls.__tostring = function(n) return n:show() end
  return cls
end

local Num, Var, Neg, Bin, Let, If, Call =
  node("Num"), node("Var"), node("Neg"), node("Bin"), node("Let"), node("If"), node("Call")

function Num.new(v) return setmetatable({ v = v }, Num) end
function Num:eval() return self.v end
function Num:show() return tostring(self.v) end

function Var.new(name) return setmetatable({ id = name }, Var) end
function Var:eval(env)
  local v = env[self.id]
  if v == nil then error("unbound variable " .. self.id) end
  return v
end
function Var:show() return self.id end

function Neg.new(e) return setmetatable({ e = e }, Neg) end
function Neg:eval(env) return (-self.e:eval(env)) % MOD end
function Neg:show() return "(-" .. self.e:show() .. ")" end

local binops = {
  ["+"] = function(a, b) return (a + b) % MOD end,
  ["-"] = function(a, b) return (a - b) % MOD end,
  ["*"] = function(a, b) return (a * b) % MOD end,
  ["/"] = function(a, b) if b == 0 then return 0 end return math.floor(a / b) end,
  ["%"] = function(a, b) if b == 0 then return a end return a % b end,
  ["<"] = function(a, b) return a < b and 1 or 0 end,
  [">"] = function(a, b) return a > b and 1 or 0 end,
  ["=="] = function(a, b) return a == b and 1 or 0 end,
  ["<="] = function(a, b) return a <= b and 1 or 0 end,
  [">="] = function(a, b) return a >= b and 1 or 0 end,
}
function Bin.new(op, l, r) return setmetatable({ op = op, l = l, r = r, fn = binops[op] }, Bin) end
function Bin:eval(env) return self.fn(self.l:eval(env), self.r:eval(env)) end
function Bin:show() return "(" .. self.l:show() .. " " .. self.op .. " " .. self.r:show() .. ")" end

function Let.new(id, e, body) return setmetatable({ id = id, e = e, body = body }, Let) end
function Let:eval(env)
  local scope = setmetatable({}, { __index = env })
  scope[self.id] = self.e:eval(env)
  return self.body:eval(scope)
end
function Let:show()
  return "(let " .. self.id .. " = " .. self.e:show() .. " in " .. self.body:show() .. ")"
end

function If.new(c, a, b) return setmetatable({ c = c, a = a, b = b }, If) end
function If:eval(env)
  if self.c:eval(env) ~= 0 then return self.a:eval(env) end
  return self.b:eval(env)
end
function If:show()
  return "(if " .. self.c:show() .. " then " .. self.a:show() .. " else " .. self.b:show() .. ")"
end

local builtins = {
  min = math.min, max = math.max,
  abs = function(x) return math.abs(x) end,
}
function Call.new(fname, args) return setmetatable({ fname = fname, args = args }, Call) end
function Call:eval(env)
  local vals = {}
  for i, a in ipairs(self.args) do vals[i] = a:eval(env) end
  return builtins[self.fname](unpack(vals))
end
function Call:show()
  local parts = {}
  for i, a in ipairs(self.args) do parts[i] = a:show() end
  return self.fname .. "(" .. table.concat(parts, ", ") .. ")"
end

---------------------------------------------------------------- parser
local Parser = {}
Parser.__index = Parser

function Parser.new(src) return setmetatable({ lex = Lexer.new(src) }, Parser) end

function Parser:expr()
  local lex = self.lex
  if lex:peek() == "let" then
    lex:next()
    local id = lex:expect("name").value
    lex:expect("=")
    local e = self:expr()
    lex:expect("in")
    return Let.new(id, e, self:expr())
  elseif lex:peek() == "if" then
    lex:next()
    local c = self:expr()
    lex:expect("then")
    local a = self:expr()
    lex:expect("else")
    return If.new(c, a, self:expr())
  end
  return self:comparison()
end

local CMP = { ["<"] = true, [">"] = true, ["=="] = true, ["<="] = true, [">="] = true }
function Parser:comparison()
  local left = self:sum()
  if CMP[self.lex:peek()] then
    local op = self.lex:next().kind
    left = Bin.new(op, left, self:sum())
  end
  return left
end

function Parser:sum()
  local left = self:term()
  while self.lex:peek() == "+" or self.lex:peek() == "-" do
    local op = self.lex:next().kind
    left = Bin.new(op, left, self:term())
  end
  return left
end

function Parser:term()
  local left = self:unary()
  local k = self.lex:peek()
  while k == "*" or k == "/" or k == "%" do
    self.lex:next()
    left = Bin.new(k, left, self:unary())
    k = self.lex:peek()
  end
  return left
end

function Parser:unary()
  if self.lex:peek() == "-" then
    self.lex:next()
    return Neg.new(self:unary())
  end
  return self:atom()
end

function Parser:atom()
  local t = self.lex:next()
  if t.kind == "num" then return Num.new(t.value) end
  if t.kind == "(" then
    local e = self:expr()
    self.lex:expect(")")
    return e
  end
  if t.kind == "name" then
    if self.lex:peek() == "(" then
      self.lex:next()
      local args = { self:expr() }
      while self.lex:peek() == "," do
        self.lex:next()
        args[#args + 1] = self:expr()
      end
      self.lex:expect(")")
      return Call.new(t.value, args)
    end
    return Var.new(t.value)
  end
  error("unexpected token " .. t.kind)
end

local function parse(src)
  local p = Parser.new(src)
  local e = p:expr()
  p.lex:expect("eof")
  return e
end

---------------------------------------------------------------- generator
local seed = 777
local function rand(m)
  seed = (seed * 16807) % 2147483647
  return seed % m + 1
end

local OPS = { "+", "-", "*", "/", "%", "+", "*", "<", "==", ">=" }
local NAMES = { "x", "y", "z", "count", "total", "k" }

local function gen(depth, scope)
  if depth <= 0 or rand(10) <= 2 then
    if #scope > 0 and rand(2) == 1 then return scope[rand(#scope)] end
    return tostring(rand(1000) - 1)
  end
  local r = rand(12)
  if r <= 6 then
    local op = OPS[rand(#OPS)]
    local text = gen(depth - 1, scope) .. " " .. op .. " " .. gen(depth - 1, scope)
    if CMP[op] then text = "(" .. text .. ")" end -- comparisons do not chain
    return text
  elseif r == 7 then
    return "(" .. gen(depth - 1, scope) .. ")"
  elseif r == 8 then
    return "-" .. gen(depth - 1, scope)
  elseif r <= 10 then
    local name = NAMES[rand(#NAMES)]
    local value = gen(depth - 1, scope)
    local inner = {}
    for i, v in ipairs(scope) do inner[i] = v end
    inner[#inner + 1] = name
    return "(let " .. name .. " = " .. value .. " in " .. gen(depth - 1, inner) .. ")"
  elseif r == 11 then
    return "(if " .. gen(depth - 1, scope) .. " then " .. gen(depth - 1, scope) ..
      " else " .. gen(depth - 1, scope) .. ")"
  else
    local f = ({ "min", "max", "abs" })[rand(3)]
    if f == "abs" then return "abs(" .. gen(depth - 1, scope) .. ")" end
    return f .. "(" .. gen(depth - 1, scope) .. ", " .. gen(depth - 1, scope) .. ")"
  end
end

local n = tonumber(arg and arg[1]) or 4500
local sum, tokens, shown_len, mismatches = 0, 0, 0, 0
local global = { k = 7 }
for _ = 1, n do
  local src = gen(6, { "k" })
  local ast = parse(src)
  local v = ast:eval(global)
  tokens = tokens + #Lexer.new(src).tokens
  local printed = tostring(ast)
  shown_len = shown_len + #printed
  local v2 = parse(printed):eval(global)
  if v ~= v2 then mismatches = mismatches + 1 end
  sum = (sum * 31 + v) % MOD
end

print("programs", n)
print("tokens", tokens)
print("printed bytes", shown_len)
print("mismatches", mismatches)
print("value checksum", sum)
print(tostring(parse("let a = 6 * 7 in let b = a - 2 in max(a, b) * -(b % 5 + 1)")),
  parse("let a = 6 * 7 in let b = a - 2 in max(a, b) * -(b % 5 + 1)"):eval({}))
print("done")

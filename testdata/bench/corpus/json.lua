-- sizes: 11000 800
-- A JSON encoder and decoder written as a small module: string escaping,
-- sorted object keys, a position-based recursive decoder using string.find/
-- string.byte, and a null sentinel. Generates a document of n records,
-- round-trips it (encode -> decode -> encode), deep-compares, and checksums.

local json = {}
json.null = setmetatable({}, { __tostring = function() return "null" end })

local escapes = {
  ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f',
  ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t',
}

local function escape_str(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function is_array(t)
  local n = #t
  if n == 0 then return next(t) == nil end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local encode_value

local function encode_table(t, out)
  if is_array(t) then
    out[#out + 1] = "["
    for i = 1, #t do
      if i > 1 then out[#out + 1] = "," end
      encode_value(t[i], out)
    end
    out[#out + 1] = "]"
  else
    local keys = {}
    for k in pairs(t) do
      assert(type(k) == "string", "object keys must be strings")
      keys[#keys + 1] = k
    end
    table.sort(keys)
    out[#out + 1] = "{"
    for i, k in ipairs(keys) do
      if i > 1 then out[#out + 1] = "," end
      out[#out + 1] = escape_str(k)
      out[#out + 1] = ":"
      encode_value(t[k], out)
    end
    out[#out + 1] = "}"
  end
end

encode_value = function(v, out)
  local tv = type(v)
  if v == json.null or v == nil then
    out[#out + 1] = "null"
  elseif tv == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif tv == "number" then
    if v == math.floor(v) and math.abs(v) < 2^53 then
      out[#out + 1] = string.format("%d", v)
    else
      out[#out + 1] = string.format("%.14g", v)
    end
  elseif tv == "string" then
    out[#out + 1] = escape_str(v)
  elseif tv == "table" then
    encode_table(v, out)
  else
    error("cannot encode " .. tv)
  end
end

function json.encode(v)
  local out = {}
  encode_value(v, out)
  return table.concat(out)
end

---------------------------------------------------------------- decoder
local Decoder = {}
Decoder.__index = Decoder

function Decoder.new(text)
  return setmetatable({ text = text, pos = 1 }, Decoder)
end

function Decoder:skip()
  self.pos = self.text:find("[^ \t\r\n]", self.pos) or #self.text + 1
end

function Decoder:error(msg)
  error(string.format("json: %s at position %d", msg, self.pos))
end

local unescapes = { b = "\b", f = "\f", n = "\n", r = "\r", t = "\t", ['"'] = '"', ["\\"] = "\\", ["/"] = "/" }

function Decoder:string()
  local text, i = self.text, self.pos + 1
  local parts = {}
  while true do
    local j = text:find('["\\]', i)
    if not j then self:error("unterminated string") end
    parts[#parts + 1] = text:sub(i, j - 1)
    if text:sub(j, j) == '"' then
      self.pos = j + 1
      return table.concat(parts)
    end
    local c = text:sub(j + 1, j + 1)
    if c == "u" then
      parts[#parts + 1] = string.char(tonumber(text:sub(j + 2, j + 5), 16))
      i = j + 6
    else
      parts[#parts + 1] = unescapes[c] or self:error("bad escape")
      i = j + 2
    end
  end
end

function Decoder:value()
  self:skip()
  local text, pos = self.text, self.pos
  local c = text:sub(pos, pos)
  if c == "{" then
    local obj = {}
    self.pos = pos + 1
    self:skip()
    if text:sub(self.pos, self.pos) == "}" then self.pos = self.pos + 1; return obj end
    while true do
      self:skip()
      if text:sub(self.pos, self.pos) ~= '"' then self:error("expected key") end
      local key = self:string()
      self:skip()
      if text:sub(self.pos, self.pos) ~= ":" then self:error("expected ':'") end
      self.pos = self.pos + 1
      obj[key] = self:value()
      self:skip()
      local d = text:sub(self.pos, self.pos)
      self.pos = self.pos + 1
      if d == "}" then return obj end
      if d ~= "," then self:error("expected ',' or '}'") end
    end
  elseif c == "[" then
    local arr = {}
    self.pos = pos + 1
    self:skip()
    if text:sub(self.pos, self.pos) == "]" then self.pos = self.pos + 1; return arr end
    while true do
      arr[#arr + 1] = self:value()
      self:skip()
      local d = text:sub(self.pos, self.pos)
      self.pos = self.pos + 1
      if d == "]" then return arr end
      if d ~= "," then self:error("expected ',' or ']'") end
    end
  elseif c == '"' then
    return self:string()
  elseif text:find("^true", pos) then
    self.pos = pos + 4; return true
  elseif text:find("^false", pos) then
    self.pos = pos + 5; return false
  elseif text:find("^null", pos) then
    self.pos = pos + 4; return json.null
  else
    local s, e = text:find("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
    if not s then self:error("unexpected character '" .. c .. "'") end
    self.pos = e + 1
    return tonumber(text:sub(s, e))
  end
end

function json.decode(text)
  local d = Decoder.new(text)
  local v = d:value()
  d:skip()
  if d.pos <= #text then d:error("trailing garbage") end
  return v
end

---------------------------------------------------------------- test data
local seed = 2024
local function rand(m)
  seed = (seed * 16807) % 2147483647
  return seed % m + 1
end

local words = { "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta",
  "iota", "kappa", "lambda", "mu", "quote\"d", "back\\slash", "tab\there", "line\nbreak" }

local function random_string()
  local parts = {}
  for i = 1, rand(4) do parts[i] = words[rand(#words)] end
  return table.concat(parts, " ")
end

local function random_value(depth)
  local k = rand(depth > 3 and 6 or 8)
  if k == 1 then return rand(100000) - 50000
  elseif k == 2 then return (rand(8000) - 4000) / 8
  elseif k == 3 then return random_string()
  elseif k == 4 then return rand(2) == 1
  elseif k == 5 then return json.null
  elseif k == 6 then return rand(1000)
  elseif k == 7 then
    local arr = {}
    for i = 1, rand(5) do arr[i] = random_value(depth + 1) end
    return arr
  else
    local obj = {}
    for _ = 1, rand(5) do obj[words[rand(#words)]] = random_value(depth + 1) end
    return obj
  end
end

local function deep_equal(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) ~= "table" then return a == b end
  for k, v in pairs(a) do
    if not deep_equal(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

local function checksum(s)
  local h = 0
  for i = 1, #s, 7 do
    h = (h * 31 + s:byte(i)) % 1000000007
  end
  return h
end

local n = tonumber(arg and arg[1]) or 11000
local doc = { version = 3, generator = "bench", records = {} }
for i = 1, n do
  doc.records[i] = {
    id = i,
    name = random_string(),
    score = (rand(10000) - 1) / 16,
    tags = { words[rand(#words)], words[rand(#words)] },
    payload = random_value(0),
  }
end

local text = json.encode(doc)
local back = json.decode(text)
local again = json.encode(back)
assert(text == again, "round trip changed the text")
assert(deep_equal(doc, back), "round trip changed the data")

local total_score, nested = 0, 0
for _, r in ipairs(back.records) do
  total_score = total_score + r.score
  if type(r.payload) == "table" and r.payload ~= json.null then nested = nested + 1 end
end

print("bytes", #text)
print("records", #back.records)
print("nested payloads", nested)
print(string.format("total score %.4f", total_score))
print("checksum", checksum(text))
print("done")

-- sizes: 2200 80
-- Class hierarchies over metatables: a class() helper with __index chains up
-- to four levels (Shape > Polygon > Rectangle > Square), method overriding with
-- explicit super calls, isinstance checks, and __tostring/__eq/__lt/__le/__add/
-- __len metamethods. Random shapes are generated, sorted by area, compared,
-- scaled and merged into composites.

local seed = 12345
local function rand(m)
  seed = (seed * 16807) % 2147483647
  return seed % m + 1
end

local METAMETHODS = { "__tostring", "__eq", "__lt", "__le", "__add", "__len" }

local function class(name, parent)
  local cls = { classname = name }
  cls.__index = cls
  if parent then
    setmetatable(cls, { __index = parent })
    cls.super = parent
    -- metamethods are looked up raw, so copy them down explicitly
    for _, mm in ipairs(METAMETHODS) do
      cls[mm] = parent[mm]
    end
  end
  function cls.new(...)
    local obj = setmetatable({}, cls)
    obj:init(...)
    return obj
  end
  return cls
end

local function isinstance(obj, klass)
  local c = getmetatable(obj)
  while c do
    if c == klass then return true end
    c = c.super
  end
  return false
end

local Composite -- forward declaration, used by Shape.__add

---------------------------------------------------------------- Shape
local Shape = class("Shape")
local next_id = 0

function Shape:init()
  next_id = next_id + 1
  self.id = next_id
end
function Shape:area() return 0 end
function Shape:perimeter() return 0 end
function Shape:describe() return self.classname .. "#" .. self.id end
function Shape:leaves() return 1 end

Shape.__tostring = function(s)
  return string.format("%s area=%.3f perim=%.3f", s:describe(), s:area(), s:perimeter())
end
Shape.__eq = function(a, b)
  return a.classname == b.classname and math.abs(a:area() - b:area()) < 1e-9
end
Shape.__lt = function(a, b)
  local x, y = a:area(), b:area()
  if x ~= y then return x < y end
  return a.id < b.id
end
Shape.__le = function(a, b) return not (b < a) end
Shape.__add = function(a, b) return Composite.new({ a, b }) end
Shape.__len = function(s) return s:leaves() end

---------------------------------------------------------------- Polygon
local Polygon = class("Polygon", Shape)
function Polygon:init(sides)
  Shape.init(self)
  self.sides = sides
end
function Polygon:perimeter()
  local p = 0
  for _, s in ipairs(self.sides) do p = p + s end
  return p
end
function Polygon:describe()
  return Shape.describe(self) .. "[" .. #self.sides .. "]"
end

local Triangle = class("Triangle", Polygon)
function Triangle:init(a, b, c)
  Polygon.init(self, { a, b, c })
end
function Triangle:area()
  local a, b, c = self.sides[1], self.sides[2], self.sides[3]
  local s = (a + b + c) / 2
  return math.sqrt(s * (s - a) * (s - b) * (s - c))
end
function Triangle:scaled(k)
  local s = self.sides
  return Triangle.new(s[1] * k, s[2] * k, s[3] * k)
end

local Rectangle = class("Rectangle", Polygon)
function Rectangle:init(w, h)
  Polygon.init(self, { w, h, w, h })
  self.w, self.h = w, h
end
function Rectangle:area() return self.w * self.h end
function Rectangle:scaled(k) return Rectangle.new(self.w * k, self.h * k) end

local Square = class("Square", Rectangle)
function Square:init(side)
  Rectangle.init(self, side, side)
end
function Square:describe()
  return Rectangle.describe(self) .. "!"
end
function Square:scaled(k) return Square.new(self.w * k) end

---------------------------------------------------------------- Ellipse
local Ellipse = class("Ellipse", Shape)
function Ellipse:init(a, b)
  Shape.init(self)
  self.a, self.b = a, b
end
function Ellipse:area() return math.pi * self.a * self.b end
function Ellipse:perimeter()
  -- Ramanujan's approximation
  local a, b = self.a, self.b
  return math.pi * (3 * (a + b) - math.sqrt((3 * a + b) * (a + 3 * b)))
end
function Ellipse:scaled(k) return Ellipse.new(self.a * k, self.b * k) end

local Circle = class("Circle", Ellipse)
function Circle:init(r) Ellipse.init(self, r, r) end
function Circle:perimeter() return 2 * math.pi * self.a end
function Circle:scaled(k) return Circle.new(self.a * k) end

---------------------------------------------------------------- Composite
Composite = class("Composite", Shape)
function Composite:init(parts)
  Shape.init(self)
  self.parts = {}
  for _, p in ipairs(parts) do
    if isinstance(p, Composite) then
      for _, q in ipairs(p.parts) do self.parts[#self.parts + 1] = q end
    else
      self.parts[#self.parts + 1] = p
    end
  end
end
function Composite:area()
  local total = 0
  for _, p in ipairs(self.parts) do total = total + p:area() end
  return total
end
function Composite:perimeter()
  local total = 0
  for _, p in ipairs(self.parts) do total = total + p:perimeter() end
  return total
end
function Composite:leaves() return #self.parts end
function Composite:scaled(k)
  local out = {}
  for i, p in ipairs(self.parts) do out[i] = p:scaled(k) end
  return Composite.new(out)
end

---------------------------------------------------------------- driver
local function random_shape()
  local kind = rand(5)
  if kind == 1 then
    local a, b = rand(20) + 2, rand(20) + 2
    local c = math.abs(a - b) + rand(2 * math.min(a, b) - 1)
    return Triangle.new(a, b, c)
  elseif kind == 2 then
    return Rectangle.new(rand(12), rand(12))
  elseif kind == 3 then
    return Square.new(rand(12))
  elseif kind == 4 then
    return Ellipse.new(rand(8), rand(8))
  else
    return Circle.new(rand(8))
  end
end

local n = tonumber(arg and arg[1]) or 2200
local BATCH = 100
local counts = { Polygon = 0, Rectangle = 0, Ellipse = 0, Shape = 0 }
local classes = { Polygon = Polygon, Rectangle = Rectangle, Ellipse = Ellipse, Shape = Shape }
local equal_pairs, ordered, total_area, total_len, leaves = 0, 0, 0, 0, 0

for _ = 1, n do
  local batch = {}
  for i = 1, BATCH do
    local s = random_shape()
    if rand(4) == 1 then s = s:scaled(2) end
    batch[i] = s
    for cname, klass in pairs(classes) do
      if isinstance(s, klass) then counts[cname] = counts[cname] + 1 end
    end
  end
  table.sort(batch)
  for i = 2, #batch do
    if batch[i - 1] == batch[i] then equal_pairs = equal_pairs + 1 end
    if batch[i - 1] <= batch[i] then ordered = ordered + 1 end
  end
  local merged = batch[1]
  for i = 2, #batch, 3 do merged = merged + batch[i] end
  local bigger = merged:scaled(1.5)
  leaves = leaves + #bigger
  total_area = total_area + bigger:area()
  total_len = total_len + #tostring(batch[1]) + #tostring(batch[#batch])
end

local names = {}
for k in pairs(counts) do names[#names + 1] = k end
table.sort(names)
for _, k in ipairs(names) do print(string.format("isinstance %-9s %d", k, counts[k])) end
print("equal neighbours", equal_pairs)
print("ordered pairs", ordered)
print("composite leaves", leaves)
print(string.format("scaled area %.3f", total_area))
print("tostring bytes", total_len)
print("objects created", next_id)
print("done")

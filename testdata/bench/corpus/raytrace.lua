-- sizes: 240 50
-- A small ray tracer: a Vec3 class with arithmetic metamethods, Ray, Sphere
-- and Plane objects sharing an intersect/normal interface, a Scene with point
-- lights, Lambert + Blinn-Phong shading, hard shadows and one bounce of
-- reflection. Renders a size x size image, quantises it to 8-bit grey and
-- prints a checksum, a histogram and a coarse ASCII thumbnail.

local sqrt = math.sqrt

-- integer power by squaring: exact same rounding everywhere, unlike libm pow
local function powi(x, k)
  local r = 1
  while k > 0 do
    if k % 2 == 1 then r = r * x end
    x = x * x
    k = k // 2
  end
  return r
end

local Vec3 = {}
Vec3.__index = Vec3
local function v3(x, y, z) return setmetatable({ x = x, y = y, z = z }, Vec3) end
Vec3.__add = function(a, b) return v3(a.x + b.x, a.y + b.y, a.z + b.z) end
Vec3.__sub = function(a, b) return v3(a.x - b.x, a.y - b.y, a.z - b.z) end
Vec3.__mul = function(a, b)
  if type(a) == "number" then return v3(a * b.x, a * b.y, a * b.z) end
  return v3(a.x * b, a.y * b, a.z * b)
end
Vec3.__unm = function(a) return v3(-a.x, -a.y, -a.z) end
Vec3.__tostring = function(a) return string.format("<%.4f %.4f %.4f>", a.x, a.y, a.z) end
function Vec3:dot(b) return self.x * b.x + self.y * b.y + self.z * b.z end
function Vec3:length() return sqrt(self:dot(self)) end
function Vec3:norm() return self * (1 / self:length()) end
function Vec3:reflect(n) return self - n * (2 * self:dot(n)) end

local Ray = {}
Ray.__index = Ray
function Ray.new(origin, dir) return setmetatable({ origin = origin, dir = dir }, Ray) end
function Ray:at(t) return self.origin + self.dir * t end

---------------------------------------------------------------- objects
local Sphere = {}
Sphere.__index = Sphere
function Sphere.new(center, radius, material)
  return setmetatable({ center = center, radius = radius, r2 = radius * radius, material = material }, Sphere)
end
function Sphere:intersect(ray)
  local oc = ray.origin - self.center
  local b = oc:dot(ray.dir)
  local c = oc:dot(oc) - self.r2
  local disc = b * b - c
  if disc < 0 then return nil end
  local s = sqrt(disc)
  local t = -b - s
  if t > 1e-6 then return t end
  t = -b + s
  if t > 1e-6 then return t end
  return nil
end
function Sphere:normal_at(p) return (p - self.center):norm() end

local Plane = {}
Plane.__index = Plane
function Plane.new(normal, offset, material)
  return setmetatable({ normal = normal:norm(), offset = offset, material = material }, Plane)
end
function Plane:intersect(ray)
  local denom = self.normal:dot(ray.dir)
  if math.abs(denom) < 1e-9 then return nil end
  local t = (self.offset - self.normal:dot(ray.origin)) / denom
  if t > 1e-6 then return t end
  return nil
end
function Plane:normal_at() return self.normal end

local function material(diffuse, specular, shininess, reflect)
  return { diffuse = diffuse, specular = specular, shininess = shininess, reflect = reflect }
end

---------------------------------------------------------------- scene
local Scene = {}
Scene.__index = Scene
function Scene.new() return setmetatable({ objects = {}, lights = {}, ambient = 0.08, rays = 0 }, Scene) end
function Scene:add(obj) self.objects[#self.objects + 1] = obj; return obj end
function Scene:light(pos, power) self.lights[#self.lights + 1] = { pos = pos, power = power } end

function Scene:hit(ray, max_t)
  self.rays = self.rays + 1
  local best_t, best = max_t or math.huge, nil
  for _, obj in ipairs(self.objects) do
    local t = obj:intersect(ray)
    if t and t < best_t then best_t, best = t, obj end
  end
  return best, best_t
end

function Scene:trace(ray, depth)
  local obj, t = self:hit(ray)
  if not obj then
    return 0.2 + 0.3 * math.max(0, ray.dir.y) -- sky gradient
  end
  local p = ray:at(t)
  local n = obj:normal_at(p)
  local m = obj.material
  local color = self.ambient * m.diffuse
  for _, light in ipairs(self.lights) do
    local to_light = light.pos - p
    local dist = to_light:length()
    local l = to_light * (1 / dist)
    local shadowed = self:hit(Ray.new(p + n * 1e-4, l), dist)
    if not shadowed then
      local lambert = math.max(0, n:dot(l))
      local h = (l - ray.dir):norm()
      local spec = powi(math.max(0, n:dot(h)), m.shininess)
      color = color + light.power * (m.diffuse * lambert + m.specular * spec)
    end
  end
  if depth > 0 and m.reflect > 0 then
    local r = ray.dir:reflect(n)
    color = color * (1 - m.reflect) + m.reflect * self:trace(Ray.new(p + n * 1e-4, r), depth - 1)
  end
  return color
end

---------------------------------------------------------------- render
local n = tonumber(arg and arg[1]) or 240

local scene = Scene.new()
scene:add(Plane.new(v3(0, 1, 0), -1, material(0.6, 0.1, 8, 0.25)))
scene:add(Sphere.new(v3(0, 0, 4), 1, material(0.7, 0.6, 32, 0.3)))
scene:add(Sphere.new(v3(-2.2, -0.3, 5), 0.7, material(0.9, 0.2, 16, 0)))
scene:add(Sphere.new(v3(2.1, 0.2, 5.5), 1.2, material(0.5, 0.9, 64, 0.5)))
for i = 1, 5 do
  scene:add(Sphere.new(v3(-3 + i * 1.2, -0.8, 2.5 + (i % 2) * 0.6), 0.2, material(0.8, 0.4, 24, 0.1)))
end
scene:light(v3(-4, 5, -1), 0.7)
scene:light(v3(3, 4, 1), 0.5)

local eye = v3(0, 0.4, -2)
local histogram = { 0, 0, 0, 0, 0, 0, 0, 0 }
local checksum, sum = 0, 0
local rows = {}
local RAMP = " .:-=+*#%@"
for y = 0, n - 1 do
  local row = {}
  for x = 0, n - 1 do
    local dx = (x + 0.5) / n * 2 - 1
    local dy = 1 - (y + 0.5) / n * 2
    local dir = v3(dx, dy * 0.9, 1.5):norm()
    local c = scene:trace(Ray.new(eye, dir), 2)
    local grey = math.floor(math.min(1, math.max(0, c)) * 255 + 0.5)
    sum = sum + grey
    checksum = (checksum * 33 + grey) % 1000000007
    histogram[grey // 32 + 1] = histogram[grey // 32 + 1] + 1
    row[#row + 1] = grey
  end
  rows[#rows + 1] = row
end

print("pixels", n * n, "rays", scene.rays)
print("mean grey", string.format("%.3f", sum / (n * n)))
print("checksum", checksum)
print("histogram", table.concat(histogram, " "))
local step = math.max(1, n // 16)
for y = 1, n, step * 2 do
  local line = {}
  for x = 1, n, step do
    local g = rows[y][x]
    local k = g * (#RAMP - 1) // 255 + 1
    line[#line + 1] = RAMP:sub(k, k)
  end
  print("|" .. table.concat(line) .. "|")
end
print("center", tostring(Ray.new(eye, v3(0, 0, 1)):at(4)))
print("done")

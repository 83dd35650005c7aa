-- sizes: 800 25
-- 2D collision detection: an immutable Vec2 class with arithmetic metamethods
-- (__add, __sub, __mul, __div, __unm, __eq, __tostring), Body objects with
-- axis-aligned bounding boxes, a uniform spatial hash grid for the broad phase
-- and circle tests for the narrow phase, with elastic bounces off walls and
-- each other. The grid result is cross-checked against brute force.

local Vec2 = {}
Vec2.__index = Vec2

local function vec(x, y) return setmetatable({ x = x, y = y }, Vec2) end
Vec2.new = vec

function Vec2.__add(a, b) return vec(a.x + b.x, a.y + b.y) end
function Vec2.__sub(a, b) return vec(a.x - b.x, a.y - b.y) end
function Vec2.__mul(a, b)
  if type(a) == "number" then return vec(a * b.x, a * b.y) end
  if type(b) == "number" then return vec(a.x * b, a.y * b) end
  return a.x * b.x + a.y * b.y -- dot product
end
function Vec2.__div(a, s) return vec(a.x / s, a.y / s) end
function Vec2.__unm(a) return vec(-a.x, -a.y) end
function Vec2.__eq(a, b) return a.x == b.x and a.y == b.y end
function Vec2.__tostring(a) return string.format("(%.3f, %.3f)", a.x, a.y) end
function Vec2:length2() return self.x * self.x + self.y * self.y end
function Vec2:length() return math.sqrt(self:length2()) end
function Vec2:normalized()
  local len = self:length()
  if len == 0 then return vec(0, 0) end
  return self / len
end

---------------------------------------------------------------- AABB / Body
local AABB = {}
AABB.__index = AABB
function AABB.new(min, max) return setmetatable({ min = min, max = max }, AABB) end
function AABB:overlaps(o)
  return self.min.x <= o.max.x and o.min.x <= self.max.x
     and self.min.y <= o.max.y and o.min.y <= self.max.y
end

local Body = {}
Body.__index = Body
function Body.new(id, pos, vel, radius)
  return setmetatable({ id = id, pos = pos, vel = vel, radius = radius, mass = radius * radius, hits = 0 }, Body)
end
function Body:bounds()
  local r = vec(self.radius, self.radius)
  return AABB.new(self.pos - r, self.pos + r)
end
function Body:integrate(dt, world)
  self.pos = self.pos + self.vel * dt
  local p, v, r = self.pos, self.vel, self.radius
  if p.x < r and v.x < 0 or p.x > world - r and v.x > 0 then self.vel = vec(-v.x, v.y) end
  v = self.vel
  if p.y < r and v.y < 0 or p.y > world - r and v.y > 0 then self.vel = vec(v.x, -v.y) end
end
function Body:touches(other)
  local d = other.pos - self.pos
  local rr = self.radius + other.radius
  return d:length2() < rr * rr
end

-- elastic collision response along the line of centres
local function resolve(a, b)
  local normal = (b.pos - a.pos):normalized()
  local rel = (a.vel - b.vel) * normal
  if rel <= 0 then return false end -- already separating
  local impulse = 2 * rel / (a.mass + b.mass)
  a.vel = a.vel - normal * (impulse * b.mass)
  b.vel = b.vel + normal * (impulse * a.mass)
  a.hits, b.hits = a.hits + 1, b.hits + 1
  return true
end

---------------------------------------------------------------- grid
local Grid = {}
Grid.__index = Grid
function Grid.new(cell) return setmetatable({ cell = cell, buckets = {} }, Grid) end
function Grid:key(x, y) return math.floor(x / self.cell) * 65536 + math.floor(y / self.cell) end
function Grid:insert(body)
  local box = body:bounds()
  local c = self.cell
  for gx = math.floor(box.min.x / c), math.floor(box.max.x / c) do
    for gy = math.floor(box.min.y / c), math.floor(box.max.y / c) do
      local k = gx * 65536 + gy
      local b = self.buckets[k]
      if not b then b = {}; self.buckets[k] = b end
      b[#b + 1] = body
    end
  end
end
function Grid:pairs()
  local seen, out = {}, {}
  for _, bucket in pairs(self.buckets) do
    for i = 1, #bucket do
      local a = bucket[i]
      for j = i + 1, #bucket do
        local b = bucket[j]
        local lo, hi = a, b
        if lo.id > hi.id then lo, hi = hi, lo end
        local key = lo.id * 100000 + hi.id
        if not seen[key] and lo:bounds():overlaps(hi:bounds()) and lo:touches(hi) then
          seen[key] = true
          out[#out + 1] = { lo, hi }
        end
      end
    end
  end
  -- resolve in a deterministic order, independent of hash iteration
  table.sort(out, function(p, q)
    if p[1].id ~= q[1].id then return p[1].id < q[1].id end
    return p[2].id < q[2].id
  end)
  return out
end

---------------------------------------------------------------- simulation
local seed = 4242
local function rand(m)
  seed = (seed * 16807) % 2147483647
  return seed % m + 1
end

local n = tonumber(arg and arg[1]) or 800
local WORLD, COUNT = 400, 300
local bodies = {}
for i = 1, COUNT do
  local pos = vec(rand(380) + 10, rand(380) + 10)
  local vel = vec(rand(41) - 21, rand(41) - 21) / 4
  bodies[i] = Body.new(i, pos, vel, 2 + rand(4))
end

local contacts, resolved = 0, 0
for _ = 1, n do
  for _, b in ipairs(bodies) do b:integrate(0.5, WORLD) end
  local grid = Grid.new(16)
  for _, b in ipairs(bodies) do grid:insert(b) end
  local found = grid:pairs()
  contacts = contacts + #found
  for _, p in ipairs(found) do
    if resolve(p[1], p[2]) then resolved = resolved + 1 end
  end
end

-- cross-check the broad phase against brute force on the final state
local brute = 0
for i = 1, COUNT do
  for j = i + 1, COUNT do
    if bodies[i]:touches(bodies[j]) then brute = brute + 1 end
  end
end
local final_grid = Grid.new(16)
for _, b in ipairs(bodies) do final_grid:insert(b) end

local energy, maxhits = 0, 0
for _, b in ipairs(bodies) do
  energy = energy + 0.5 * b.mass * b.vel:length2()
  if b.hits > maxhits then maxhits = b.hits end
end

print("steps", n, "bodies", COUNT)
print("contacts", contacts, "resolved", resolved, "max hits", maxhits)
print("final overlaps grid", #final_grid:pairs(), "brute", brute)
print(string.format("kinetic energy %.6f", energy))
print("body 1 at", tostring(bodies[1].pos), "equal to itself", bodies[1].pos == vec(bodies[1].pos.x, bodies[1].pos.y))
print("done")

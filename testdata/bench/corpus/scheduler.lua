-- sizes: 60000 3000
-- Discrete-time task scheduler simulation. A generic binary-heap priority
-- queue class (custom comparator) holds ready tasks by priority and sleeping
-- tasks by wake-up time. Tasks are objects with a state machine
-- (new -> ready -> running -> blocked/ready -> done) and subclasses for CPU-bound,
-- I/O-bound and periodic work; the scheduler does time slicing and aging.

local seed = 99
local function rand(m)
  seed = (seed * 16807) % 2147483647
  return seed % m + 1
end

---------------------------------------------------------------- heap
local Heap = {}
Heap.__index = Heap

function Heap.new(less)
  return setmetatable({ items = {}, size = 0, less = less }, Heap)
end

function Heap:push(x)
  local items, less = self.items, self.less
  self.size = self.size + 1
  local i = self.size
  items[i] = x
  while i > 1 do
    local p = i // 2
    if less(items[i], items[p]) then
      items[i], items[p] = items[p], items[i]
      i = p
    else
      break
    end
  end
end

function Heap:peek() return self.items[1] end
function Heap:empty() return self.size == 0 end

function Heap:pop()
  local items, less = self.items, self.less
  local top = items[1]
  items[1] = items[self.size]
  items[self.size] = nil
  self.size = self.size - 1
  local i, n = 1, self.size
  while true do
    local l, r, m = 2 * i, 2 * i + 1, i
    if l <= n and less(items[l], items[m]) then m = l end
    if r <= n and less(items[r], items[m]) then m = r end
    if m == i then break end
    items[i], items[m] = items[m], items[i]
    i = m
  end
  return top
end

---------------------------------------------------------------- tasks
local Task = {}
Task.__index = Task

function Task.new(id, priority, work)
  return setmetatable({ id = id, priority = priority, base = priority, work = work,
    state = "new", ran = 0, waits = 0, switches = 0 }, Task)
end

function Task:__tostring()
  return string.format("%s#%d(p=%d,%s)", self.kind, self.id, self.priority, self.state)
end

Task.kind = "task"

-- run for at most `quantum` ticks; returns ticks used and next state
function Task:run(quantum)
  local used = math.min(quantum, self.work)
  self.work = self.work - used
  self.ran = self.ran + used
  if self.work == 0 then return used, "done" end
  return used, "ready"
end

local CpuTask = setmetatable({ kind = "cpu" }, { __index = Task })
CpuTask.__index = CpuTask
CpuTask.__tostring = Task.__tostring

local IoTask = setmetatable({ kind = "io" }, { __index = Task })
IoTask.__index = IoTask
IoTask.__tostring = Task.__tostring
function IoTask.new(id, priority, work, burst, latency)
  local t = Task.new(id, priority, work)
  t.burst, t.latency = burst, latency
  return setmetatable(t, IoTask)
end
function IoTask:run(quantum)
  local used, state = Task.run(self, math.min(quantum, self.burst))
  if state == "ready" then
    self.waits = self.waits + 1
    return used, "blocked", self.latency + (self.id % 3)
  end
  return used, state
end

local PeriodicTask = setmetatable({ kind = "periodic" }, { __index = IoTask })
PeriodicTask.__index = PeriodicTask
PeriodicTask.__tostring = Task.__tostring
function PeriodicTask.new(id, priority, work, period)
  local t = IoTask.new(id, priority, work, 1, period)
  return setmetatable(t, PeriodicTask)
end
function PeriodicTask:run(quantum)
  local used, state, delay = IoTask.run(self, quantum)
  if state == "blocked" then self.priority = self.base end -- reset after each wake-up
  return used, state, delay
end

---------------------------------------------------------------- scheduler
local Scheduler = {}
Scheduler.__index = Scheduler

local seq = 0
local function by_priority(a, b)
  if a.priority ~= b.priority then return a.priority < b.priority end
  return a.seq < b.seq
end
local function by_wakeup(a, b)
  if a.wake ~= b.wake then return a.wake < b.wake end
  return a.task.id < b.task.id
end

function Scheduler.new(quantum)
  return setmetatable({ now = 0, quantum = quantum, ready = Heap.new(by_priority),
    sleeping = Heap.new(by_wakeup), finished = {}, idle = 0, switches = 0,
    turnaround = 0, log = {} }, Scheduler)
end

function Scheduler:make_ready(task)
  seq = seq + 1
  task.seq = seq
  task.state = "ready"
  self.ready:push(task)
end

function Scheduler:spawn(task)
  task.created = self.now
  self:make_ready(task)
end

function Scheduler:wake_sleepers()
  local sleeping = self.sleeping
  while not sleeping:empty() and sleeping:peek().wake <= self.now do
    local entry = sleeping:pop()
    self:make_ready(entry.task)
  end
end

function Scheduler:age(limit)
  -- every task that waited gets a little more urgent; rebuild the heap
  local old = self.ready
  self.ready = Heap.new(by_priority)
  while not old:empty() do
    local t = old:pop()
    if t.priority > 0 and limit > 0 then
      t.priority = t.priority - 1
      limit = limit - 1
    end
    self.ready:push(t)
  end
end

function Scheduler:step()
  self:wake_sleepers()
  if self.ready:empty() then
    if self.sleeping:empty() then return false end
    self.idle = self.idle + (self.sleeping:peek().wake - self.now)
    self.now = self.sleeping:peek().wake
    return true
  end
  local task = self.ready:pop()
  task.state = "running"
  task.switches = task.switches + 1
  self.switches = self.switches + 1
  local used, state, delay = task:run(self.quantum)
  self.now = self.now + used
  if state == "done" then
    task.state = "done"
    task.finished = self.now
    self.turnaround = self.turnaround + (self.now - task.created)
    self.finished[#self.finished + 1] = task
  elseif state == "blocked" then
    task.state = "blocked"
    self.sleeping:push({ wake = self.now + delay, task = task })
  else
    task.priority = task.priority + 1 -- used its slice: demote
    self:make_ready(task)
  end
  if self.switches % 64 == 0 then self:age(8) end
  return true
end

---------------------------------------------------------------- driver
local n = tonumber(arg and arg[1]) or 60000
local sched = Scheduler.new(4)
local next_id, spawned = 0, 0
local function spawn_random()
  next_id = next_id + 1
  local k = rand(10)
  local t
  if k <= 4 then
    t = setmetatable(Task.new(next_id, rand(8), rand(40)), CpuTask)
  elseif k <= 8 then
    t = IoTask.new(next_id, rand(8), rand(30), rand(3), rand(20))
  else
    t = PeriodicTask.new(next_id, rand(4), rand(12), 10 + rand(10))
  end
  sched:spawn(t)
  spawned = spawned + 1
end

for _ = 1, 16 do spawn_random() end
repeat
  -- new arrivals keep coming until n tasks have been spawned
  local quiet = sched.ready:empty() and sched.sleeping:empty()
  if spawned < n and (quiet or rand(8) == 1) then spawn_random() end
until not sched:step()

local by_kind = {}
local kinds = {}
for _, t in ipairs(sched.finished) do
  local k = by_kind[t.kind]
  if not k then
    k = { count = 0, ran = 0, waits = 0, switches = 0 }
    by_kind[t.kind] = k
    kinds[#kinds + 1] = t.kind
  end
  k.count = k.count + 1
  k.ran = k.ran + t.ran
  k.waits = k.waits + t.waits
  k.switches = k.switches + t.switches
end
table.sort(kinds)
for _, name in ipairs(kinds) do
  local k = by_kind[name]
  print(string.format("%-8s count=%d ran=%d waits=%d switches=%d", name, k.count, k.ran, k.waits, k.switches))
end
print("finished", #sched.finished, "clock", sched.now, "idle", sched.idle)
print("context switches", sched.switches)
print(string.format("mean turnaround %.3f", sched.turnaround / #sched.finished))
print("last finished", tostring(sched.finished[#sched.finished]))
print("done")

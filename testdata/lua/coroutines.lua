-- Coroutines: yields inside hot loops, generators, resumes from loops,
-- yields across pcall.
local function counter(n)
  for i = 1, n do coroutine.yield(i) end
  return "done"
end
local co = coroutine.create(counter)
local s, last = 0, nil
while true do
  local ok, v = coroutine.resume(co, 20000)
  assert(ok)
  if coroutine.status(co) == "dead" then last = v break end
  s = s + v
end
print("resume loop", s, last, coroutine.status(co))

-- Generators through coroutine.wrap, consumed by a generic for.
local function gen(n)
  return coroutine.wrap(function()
    local a, b = 0, 1
    for _ = 1, n do
      coroutine.yield(a)
      a, b = b, (a + b) % 1000003
    end
  end)
end
local fs = 0
for v in gen(30000) do fs = (fs + v) % 1000000007 end
print("fib gen", fs)

-- Values passed both ways.
local acc = coroutine.wrap(function(x)
  local total = 0
  while true do
    total = total + x
    x = coroutine.yield(total)
  end
end)
local r
for i = 1, 20000 do r = acc(i % 17) end
print("two way", r)

-- A yield inside a hot loop body that itself has an inner hot loop.
local worker = coroutine.wrap(function()
  local t = 0
  for i = 1, 200 do
    for j = 1, 100 do t = t + (i * j) % 9 end
    coroutine.yield(t)
  end
  return -1
end)
local wsum = 0
for _ = 1, 200 do wsum = wsum + worker() end
print("inner hot", wsum, worker())

-- Yield across pcall: the coroutine yields inside a protected call.
local pco = coroutine.create(function()
  local total = 0
  for i = 1, 6000 do
    local ok, v = pcall(function()
      local got = coroutine.yield(i)
      if got % 1000 == 0 then error({code = got}) end
      return got
    end)
    if ok then total = total + v else total = total - v.code end
  end
  return total
end)
local ok, v = coroutine.resume(pco)
while coroutine.status(pco) ~= "dead" do
  ok, v = coroutine.resume(pco, v * 2)
end
print("yield pcall", ok, v)

-- An error inside a coroutine in a hot loop.
local eco = coroutine.create(function()
  local x = 0
  for i = 1, 100000 do
    x = x + i
    if i == 77777 then error("boom at " .. i .. " x=" .. x) end
  end
end)
local eok, emsg = coroutine.resume(eco)
print("co error", eok, emsg, coroutine.status(eco))

-- Producer/consumer pipeline with a filter.
local function producer()
  return coroutine.create(function()
    for i = 1, 15000 do coroutine.yield(i) end
  end)
end
local function filter(src)
  return coroutine.create(function()
    while true do
      local _, v = coroutine.resume(src)
      if v == nil then return end
      if v % 3 ~= 0 then coroutine.yield(v * v % 1009) end
    end
  end)
end
local f = filter(producer())
local ps, pc = 0, 0
while true do
  local _, v = coroutine.resume(f)
  if v == nil then break end
  ps, pc = ps + v, pc + 1
end
print("pipeline", pc, ps)

-- coroutine.isyieldable, running, close.
local c2 = coroutine.create(function()
  for i = 1, 10 do coroutine.yield(coroutine.isyieldable()) end
end)
local ys = 0
for _ = 1, 5 do local _, y = coroutine.resume(c2); if y then ys = ys + 1 end end
print("yieldable", ys, coroutine.isyieldable(), coroutine.close(c2), coroutine.status(c2))
-- Resuming a dead coroutine fails with a message.
print("dead", coroutine.resume(co))

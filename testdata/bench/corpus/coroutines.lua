-- sizes: 220000 10000
-- Coroutine pipelines: generators built with coroutine.wrap/yield chained as
-- producer -> map -> filter -> batch -> consumer stages; a prime sieve made of
-- a growing chain of filter coroutines; a line/word tokenizer coroutine
-- feeding a frequency counter; and resumable generators driven with
-- coroutine.create/resume/status, including passing values into yield.

local function range(from, to)
  return coroutine.wrap(function()
    for i = from, to do coroutine.yield(i) end
  end)
end

local function map(f, source)
  return coroutine.wrap(function()
    for v in source do coroutine.yield(f(v)) end
  end)
end

local function filter(pred, source)
  return coroutine.wrap(function()
    for v in source do
      if pred(v) then coroutine.yield(v) end
    end
  end)
end

local function batch(size, source)
  return coroutine.wrap(function()
    local buf = {}
    for v in source do
      buf[#buf + 1] = v
      if #buf == size then
        coroutine.yield(buf)
        buf = {}
      end
    end
    if #buf > 0 then coroutine.yield(buf) end
  end)
end

local function take(k, source)
  return coroutine.wrap(function()
    for _ = 1, k do
      local v = source()
      if v == nil then return end
      coroutine.yield(v)
    end
  end)
end

-- pipeline 1: numeric stream
local function numeric_pipeline(n)
  local collatz_len = function(x)
    local steps = 0
    while x ~= 1 do
      if x % 2 == 0 then x = x // 2 else x = 3 * x + 1 end
      steps = steps + 1
    end
    return { value = x, steps = steps }
  end
  local stream = range(1, n)
  stream = map(function(i) return i * 3 + 1 end, stream)
  stream = map(collatz_len, stream)
  stream = filter(function(r) return r.steps % 3 ~= 0 end, stream)
  local batches, total, longest = 0, 0, 0
  for b in batch(16, stream) do
    batches = batches + 1
    for _, r in ipairs(b) do
      total = total + r.steps
      if r.steps > longest then longest = r.steps end
    end
  end
  return batches, total, longest
end

-- pipeline 2: sieve of Eratosthenes as a chain of filters
local function primes()
  return coroutine.wrap(function()
    local source = range(2, math.maxinteger)
    while true do
      local p = source()
      coroutine.yield(p)
      local prev = source
      source = filter(function(x) return x % p ~= 0 end, prev)
    end
  end)
end

-- pipeline 3: text tokenizer
local SYLLABLES = { "co", "ro", "u", "ti", "ne", "ya", "ld", "re", "su", "me", "wr", "ap" }
local function text_lines(count)
  local seed = 5
  return coroutine.wrap(function()
    for i = 1, count do
      local words = {}
      for w = 1, 3 + i % 7 do
        local parts = {}
        for s = 1, 1 + (i + w) % 3 do
          seed = (seed * 16807) % 2147483647
          parts[s] = SYLLABLES[seed % #SYLLABLES + 1]
        end
        words[w] = table.concat(parts)
      end
      coroutine.yield(table.concat(words, i % 2 == 0 and " " or ", "))
    end
  end)
end

local function words_of(lines)
  return coroutine.wrap(function()
    for line in lines do
      for w in line:gmatch("%a+") do coroutine.yield(w) end
    end
  end)
end

-- pipeline 4: a running-average accumulator that receives values via resume
local function averager()
  return coroutine.create(function(first)
    local sum, count, v = 0, 0, first
    while v do
      sum, count = sum + v, count + 1
      v = coroutine.yield(sum // count)
    end
    return "closed", count
  end)
end

local n = tonumber(arg and arg[1]) or 220000

local batches, total, longest = numeric_pipeline(n)
print("collatz batches", batches, "steps", total, "longest", longest)

-- every prime adds a nested coroutine; stay well below the C-stack limit
local psum, last = 0, 0
for _ = 1, n // 1000 + 1 do
  for p in take(60, primes()) do psum, last = psum + p, p end
end
print("primes sum", psum, "last", last)

local freq, nwords = {}, 0
for w in words_of(text_lines(n // 4)) do
  freq[w] = (freq[w] or 0) + 1
  nwords = nwords + 1
end
local distinct = {}
for w in pairs(freq) do distinct[#distinct + 1] = w end
table.sort(distinct, function(a, b) return freq[a] > freq[b] or (freq[a] == freq[b] and a < b) end)
print("words", nwords, "distinct", #distinct, "top", distinct[1], freq[distinct[1]], distinct[2], freq[distinct[2]])

local avg = averager()
local _, running = coroutine.resume(avg, 10)
local acc = running
for i = 1, n do
  _, running = coroutine.resume(avg, (i * 7919) % 1000)
  acc = acc + running
end
local ok, tag, count = coroutine.resume(avg, nil)
print("averager", acc, running, ok, tag, count, coroutine.status(avg))
print("done")

-- sizes: 20000 1500
-- Graph algorithms over adjacency tables: a Graph class built from a seeded
-- random generator, breadth-first search (hop distances), recursive and
-- iterative depth-first search (components, reachability), Dijkstra's
-- shortest paths with a binary min-heap and path reconstruction, and
-- topological sorting of a DAG by Kahn's algorithm and by DFS post-order.

local seed = 1234567
local function rand(m)
  seed = (seed * 16807) % 2147483647
  return seed % m + 1
end

---------------------------------------------------------------- min-heap
local MinHeap = {}
MinHeap.__index = MinHeap
function MinHeap.new() return setmetatable({ keys = {}, vals = {}, n = 0 }, MinHeap) end
function MinHeap:push(key, val)
  local keys, vals = self.keys, self.vals
  local i = self.n + 1
  self.n = i
  while i > 1 do
    local p = i // 2
    if keys[p] <= key then break end
    keys[i], vals[i] = keys[p], vals[p]
    i = p
  end
  keys[i], vals[i] = key, val
end
function MinHeap:pop()
  local keys, vals, n = self.keys, self.vals, self.n
  local topk, topv = keys[1], vals[1]
  local k, v = keys[n], vals[n]
  keys[n], vals[n] = nil, nil
  n = n - 1
  self.n = n
  if n > 0 then
    local i = 1
    while true do
      local c = 2 * i
      if c > n then break end
      if c < n and keys[c + 1] < keys[c] then c = c + 1 end
      if k <= keys[c] then break end
      keys[i], vals[i] = keys[c], vals[c]
      i = c
    end
    keys[i], vals[i] = k, v
  end
  return topk, topv
end

---------------------------------------------------------------- graph
local Graph = {}
Graph.__index = Graph

function Graph.new(n, directed)
  local g = setmetatable({ n = n, directed = directed, adj = {}, edges = 0 }, Graph)
  for i = 1, n do g.adj[i] = {} end
  return g
end

function Graph:add_edge(u, v, w)
  local a = self.adj[u]
  a[#a + 1] = { to = v, w = w or 1 }
  if not self.directed then
    local b = self.adj[v]
    b[#b + 1] = { to = u, w = w or 1 }
  end
  self.edges = self.edges + 1
end

function Graph:bfs(src)
  local dist = { [src] = 0 }
  local queue, head = { src }, 1
  while head <= #queue do
    local u = queue[head]
    head = head + 1
    for _, e in ipairs(self.adj[u]) do
      if dist[e.to] == nil then
        dist[e.to] = dist[u] + 1
        queue[#queue + 1] = e.to
      end
    end
  end
  return dist, #queue
end

function Graph:components()
  local comp, count = {}, 0
  local function visit(u, c)
    comp[u] = c
    for _, e in ipairs(self.adj[u]) do
      if not comp[e.to] then visit(e.to, c) end
    end
  end
  local sizes = {}
  for u = 1, self.n do
    if not comp[u] then
      count = count + 1
      visit(u, count)
    end
  end
  for u = 1, self.n do sizes[comp[u]] = (sizes[comp[u]] or 0) + 1 end
  local largest = 0
  for _, s in ipairs(sizes) do if s > largest then largest = s end end
  return count, largest
end

function Graph:dijkstra(src)
  local dist, prev = {}, {}
  for i = 1, self.n do dist[i] = math.huge end
  dist[src] = 0
  local heap = MinHeap.new()
  heap:push(0, src)
  local settled = 0
  while heap.n > 0 do
    local d, u = heap:pop()
    if d == dist[u] then
      settled = settled + 1
      for _, e in ipairs(self.adj[u]) do
        local nd = d + e.w
        if nd < dist[e.to] then
          dist[e.to] = nd
          prev[e.to] = u
          heap:push(nd, e.to)
        end
      end
    end
  end
  return dist, prev, settled
end

local function path_to(prev, src, dst)
  local path = { dst }
  while dst ~= src do
    dst = prev[dst]
    if not dst then return nil end
    table.insert(path, 1, dst)
  end
  return path
end

function Graph:topo_kahn()
  local indeg = {}
  for u = 1, self.n do indeg[u] = 0 end
  for u = 1, self.n do
    for _, e in ipairs(self.adj[u]) do indeg[e.to] = indeg[e.to] + 1 end
  end
  local ready = MinHeap.new() -- smallest id first: deterministic order
  for u = 1, self.n do if indeg[u] == 0 then ready:push(u, u) end end
  local order = {}
  while ready.n > 0 do
    local _, u = ready:pop()
    order[#order + 1] = u
    for _, e in ipairs(self.adj[u]) do
      indeg[e.to] = indeg[e.to] - 1
      if indeg[e.to] == 0 then ready:push(e.to, e.to) end
    end
  end
  return order
end

function Graph:topo_dfs()
  -- iterative DFS with an explicit stack, to cope with deep graphs
  local state, order = {}, {}
  for root = 1, self.n do
    if not state[root] then
      local stack = { { root, 1 } }
      state[root] = "open"
      while #stack > 0 do
        local top = stack[#stack]
        local u, i = top[1], top[2]
        local e = self.adj[u][i]
        if e then
          top[2] = i + 1
          if state[e.to] == "open" then error("cycle") end
          if not state[e.to] then
            state[e.to] = "open"
            stack[#stack + 1] = { e.to, 1 }
          end
        else
          state[u] = "closed"
          order[#order + 1] = u
          stack[#stack] = nil
        end
      end
    end
  end
  -- reverse post-order
  for i = 1, #order // 2 do
    local j = #order - i + 1
    order[i], order[j] = order[j], order[i]
  end
  return order
end

function Graph:is_topological(order)
  local pos = {}
  for i, u in ipairs(order) do pos[u] = i end
  if #order ~= self.n then return false end
  for u = 1, self.n do
    for _, e in ipairs(self.adj[u]) do
      if pos[u] >= pos[e.to] then return false end
    end
  end
  return true
end

---------------------------------------------------------------- driver
local n = tonumber(arg and arg[1]) or 20000

local roads = Graph.new(n, false)
for u = 2, n do
  if rand(10) > 1 then roads:add_edge(u, rand(u - 1), rand(100)) end -- mostly a tree
end
for _ = 1, n * 2 do roads:add_edge(rand(n), rand(n), rand(100)) end

local hops, reached = roads:bfs(1)
local hop_sum, far = 0, 0
for v, d in pairs(hops) do
  hop_sum = hop_sum + d
  if d > far then far = d end
end
print("bfs reached", reached, "hop sum", hop_sum, "eccentricity", far)

local count, largest = roads:components()
print("components", count, "largest", largest)

local checksum, unreachable, settled_total = 0, 0, 0
for _, src in ipairs({ 1, n // 2, n }) do
  local dist, prev, settled = roads:dijkstra(src)
  settled_total = settled_total + settled
  for v = 1, n do
    if dist[v] == math.huge then unreachable = unreachable + 1
    else checksum = (checksum + dist[v] * v) % 1000000007 end
  end
  local target = (src * 7919) % n + 1
  local path = path_to(prev, src, target)
  print(string.format("path %d->%d: %s", src, target,
    path and (#path .. " nodes, cost " .. dist[target]) or "none"))
end
print("dijkstra checksum", checksum, "settled", settled_total, "unreachable", unreachable)

local perm = {}
for i = 1, n do perm[i] = i end
for i = n, 2, -1 do local j = rand(i); perm[i], perm[j] = perm[j], perm[i] end
local dag = Graph.new(n, true)
for _ = 1, n * 3 do
  local a, b = rand(n), rand(n)
  if a ~= b then
    if a > b then a, b = b, a end
    dag:add_edge(perm[a], perm[b]) -- edges follow the hidden order, so no cycles
  end
end
local k, d = dag:topo_kahn(), dag:topo_dfs()
local ksum = 0
for i = 1, #k, 97 do ksum = ksum + k[i] * i end
print("topo kahn valid", dag:is_topological(k), "dfs valid", dag:is_topological(d), "kahn sample", ksum)
print("done")

-- sizes: 110 6
-- Sudoku constraint solver: a Grid class with per-row/column/box candidate
-- sets, constraint propagation (naked singles) plus backtracking on the cell
-- with the fewest candidates. Puzzles are derived from a base solution by
-- seeded relabelling, row/column shuffles within bands, and cell removal;
-- each solution is verified against the givens and the sudoku rules.

local seed = 31337
local function rand(m)
  seed = (seed * 16807) % 2147483647
  return seed % m + 1
end

local function shuffle(t)
  for i = #t, 2, -1 do
    local j = rand(i)
    t[i], t[j] = t[j], t[i]
  end
  return t
end

local function box_of(r, c) return math.floor((r - 1) / 3) * 3 + math.floor((c - 1) / 3) + 1 end

---------------------------------------------------------------- Grid
local Grid = {}
Grid.__index = Grid

function Grid.new()
  local g = setmetatable({ cells = {}, rows = {}, cols = {}, boxes = {}, filled = 0 }, Grid)
  for i = 1, 9 do g.rows[i], g.cols[i], g.boxes[i] = {}, {}, {} end
  for i = 1, 81 do g.cells[i] = 0 end
  return g
end

function Grid.parse(text)
  local g = Grid.new()
  local i = 0
  for ch in text:gmatch("[%d%.]") do
    i = i + 1
    if ch ~= "." and ch ~= "0" then
      local r, c = math.floor((i - 1) / 9) + 1, (i - 1) % 9 + 1
      g:set(r, c, tonumber(ch))
    end
  end
  return g
end

function Grid:allowed(r, c, d)
  return not (self.rows[r][d] or self.cols[c][d] or self.boxes[box_of(r, c)][d])
end

function Grid:set(r, c, d)
  self.cells[(r - 1) * 9 + c] = d
  self.rows[r][d], self.cols[c][d], self.boxes[box_of(r, c)][d] = true, true, true
  self.filled = self.filled + 1
end

function Grid:clear(r, c)
  local d = self.cells[(r - 1) * 9 + c]
  self.cells[(r - 1) * 9 + c] = 0
  self.rows[r][d], self.cols[c][d], self.boxes[box_of(r, c)][d] = nil, nil, nil
  self.filled = self.filled - 1
end

function Grid:candidates(r, c)
  local list = {}
  for d = 1, 9 do
    if self:allowed(r, c, d) then list[#list + 1] = d end
  end
  return list
end

function Grid:__tostring()
  local lines = {}
  for r = 1, 9 do
    local row = {}
    for c = 1, 9 do
      local d = self.cells[(r - 1) * 9 + c]
      row[c] = d == 0 and "." or tostring(d)
    end
    lines[r] = table.concat(row)
  end
  return table.concat(lines, "/")
end

---------------------------------------------------------------- Solver
local Solver = {}
Solver.__index = Solver

function Solver.new(grid) return setmetatable({ grid = grid, guesses = 0, forced = 0 }, Solver) end

-- fill every cell that has a single candidate; returns list of filled cells
-- (for undo) or nil if a contradiction was found
function Solver:propagate(trail)
  local g = self.grid
  local progress = true
  while progress do
    progress = false
    for r = 1, 9 do
      for c = 1, 9 do
        if g.cells[(r - 1) * 9 + c] == 0 then
          local cands = g:candidates(r, c)
          if #cands == 0 then return false end
          if #cands == 1 then
            g:set(r, c, cands[1])
            trail[#trail + 1] = { r, c }
            self.forced = self.forced + 1
            progress = true
          end
        end
      end
    end
  end
  return true
end

function Solver:undo(trail)
  for i = #trail, 1, -1 do
    self.grid:clear(trail[i][1], trail[i][2])
  end
end

function Solver:solve()
  local g = self.grid
  local trail = {}
  if not self:propagate(trail) then self:undo(trail); return false end
  if g.filled == 81 then return true end
  -- choose the empty cell with the fewest candidates
  local best_r, best_c, best
  for r = 1, 9 do
    for c = 1, 9 do
      if g.cells[(r - 1) * 9 + c] == 0 then
        local cands = g:candidates(r, c)
        if not best or #cands < #best then best_r, best_c, best = r, c, cands end
      end
    end
  end
  for _, d in ipairs(best) do
    self.guesses = self.guesses + 1
    g:set(best_r, best_c, d)
    if self:solve() then return true end
    g:clear(best_r, best_c)
  end
  self:undo(trail)
  return false
end

---------------------------------------------------------------- puzzles
local function base_solution()
  local rows = {}
  for r = 0, 8 do
    local row = {}
    for c = 0, 8 do row[c + 1] = (r * 3 + r // 3 + c) % 9 + 1 end
    rows[r + 1] = row
  end
  return rows
end

local function make_puzzle(holes)
  local base = base_solution()
  local digits = shuffle({ 1, 2, 3, 4, 5, 6, 7, 8, 9 })
  local order = {}
  for _, band in ipairs(shuffle({ 0, 1, 2 })) do
    for _, r in ipairs(shuffle({ 1, 2, 3 })) do order[#order + 1] = band * 3 + r end
  end
  local corder = {}
  for _, stack in ipairs(shuffle({ 0, 1, 2 })) do
    for _, c in ipairs(shuffle({ 1, 2, 3 })) do corder[#corder + 1] = stack * 3 + c end
  end
  local cells = {}
  for r = 1, 9 do
    for c = 1, 9 do cells[#cells + 1] = tostring(digits[base[order[r]][corder[c]]]) end
  end
  local positions = {}
  for i = 1, 81 do positions[i] = i end
  shuffle(positions)
  for i = 1, holes do cells[positions[i]] = "." end
  return table.concat(cells)
end

local function verify(grid, givens)
  for i = 1, 81 do
    local ch = givens:sub(i, i)
    if ch ~= "." and tonumber(ch) ~= grid.cells[i] then return false end
  end
  for unit = 1, 9 do
    local seen_r, seen_c, seen_b = {}, {}, {}
    for k = 1, 9 do
      local br, bc = (unit - 1) // 3 * 3 + (k - 1) // 3 + 1, (unit - 1) % 3 * 3 + (k - 1) % 3 + 1
      local a, b, c = grid.cells[(unit - 1) * 9 + k], grid.cells[(k - 1) * 9 + unit], grid.cells[(br - 1) * 9 + bc]
      if seen_r[a] or seen_c[b] or seen_b[c] then return false end
      seen_r[a], seen_c[b], seen_b[c] = true, true, true
    end
  end
  return true
end

local n = tonumber(arg and arg[1]) or 110
local solved, guesses, forced, checksum = 0, 0, 0, 0
local hardest, hardest_guesses = nil, -1
for i = 1, n do
  local givens = make_puzzle(50 + i % 12)
  local grid = Grid.parse(givens)
  local solver = Solver.new(grid)
  if solver:solve() and verify(grid, givens) then
    solved = solved + 1
    local top = 0
    for c = 1, 9 do top = top * 10 + grid.cells[c] end
    checksum = (checksum + top * i) % 1000000007
  end
  guesses = guesses + solver.guesses
  forced = forced + solver.forced
  if solver.guesses > hardest_guesses then hardest, hardest_guesses = givens, solver.guesses end
end

print("puzzles", n, "solved", solved)
print("guesses", guesses, "forced", forced)
print("checksum", checksum)
print("hardest", hardest_guesses, hardest)
print("done")

-- sizes: 12 9
-- N-queens by backtracking over objects: a Board class tracks occupied
-- columns and diagonals, Queen objects are placed and removed, and a Solver
-- class counts all solutions for every board size up to n, keeps the first
-- solution found and checks it with an independent validator.

local Queen = {}
Queen.__index = Queen
function Queen.new(row, col) return setmetatable({ row = row, col = col }, Queen) end
function Queen:attacks(other)
  return self.col == other.col
    or self.row - self.col == other.row - other.col
    or self.row + self.col == other.row + other.col
end
function Queen:__tostring() return string.char(96 + self.col) .. self.row end

local Board = {}
Board.__index = Board

function Board.new(size)
  return setmetatable({ size = size, queens = {}, cols = {}, diag1 = {}, diag2 = {} }, Board)
end

function Board:is_free(row, col)
  return not (self.cols[col] or self.diag1[row - col] or self.diag2[row + col])
end

function Board:place(row, col)
  local q = Queen.new(row, col)
  self.queens[#self.queens + 1] = q
  self.cols[col], self.diag1[row - col], self.diag2[row + col] = true, true, true
  return q
end

function Board:remove()
  local q = table.remove(self.queens)
  self.cols[q.col], self.diag1[q.row - q.col], self.diag2[q.row + q.col] = nil, nil, nil
  return q
end

function Board:snapshot()
  local parts = {}
  for i, q in ipairs(self.queens) do parts[i] = tostring(q) end
  return table.concat(parts, " ")
end

function Board:valid()
  local qs = self.queens
  if #qs ~= self.size then return false end
  for i = 1, #qs do
    for j = i + 1, #qs do
      if qs[i]:attacks(qs[j]) then return false end
    end
  end
  return true
end

local Solver = {}
Solver.__index = Solver

function Solver.new(size)
  return setmetatable({ board = Board.new(size), count = 0, nodes = 0, first = nil,
    left = 0 }, Solver)
end

function Solver:search(row)
  local board = self.board
  if row > board.size then
    self.count = self.count + 1
    if not self.first then
      assert(board:valid(), "invalid solution")
      self.first = board:snapshot()
    end
    -- mirror symmetry: for even n exactly half the solutions start in the left half
    if 2 * board.queens[1].col <= board.size then
      self.left = self.left + 1
    end
    return
  end
  for col = 1, board.size do
    if board:is_free(row, col) then
      self.nodes = self.nodes + 1
      board:place(row, col)
      self:search(row + 1)
      board:remove()
    end
  end
end

function Solver:solve()
  self:search(1)
  return self.count
end

local n = tonumber(arg and arg[1]) or 12
local total_nodes, total = 0, 0
for size = 4, n do
  local s = Solver.new(size)
  local count = s:solve()
  total_nodes = total_nodes + s.nodes
  total = total + count
  print(string.format("n=%-2d solutions=%-6d left=%-6d nodes=%-8d first=%s",
    size, count, s.left, s.nodes, s.first))
end
print("total solutions", total, "nodes", total_nodes)
print("done")

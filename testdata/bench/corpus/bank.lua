-- sizes: 1700 60
-- Bank simulation built from closures rather than metatables: accounts are
-- tables of closures sharing private upvalues (balance, history), an event
-- bus dispatches to subscribed listener closures, a ledger audits every
-- transfer, and a day-by-day simulation runs deposits, withdrawals, transfers,
-- fees and monthly interest in integer cents with overdraft rules.

local seed = 20240101
local function rand(m)
  seed = (seed * 16807) % 2147483647
  return seed % m + 1
end

---------------------------------------------------------------- event bus
local function new_bus()
  local listeners = {}
  local bus = {}
  function bus.subscribe(kind, fn)
    listeners[kind] = listeners[kind] or {}
    table.insert(listeners[kind], fn)
  end
  function bus.emit(kind, ...)
    local list = listeners[kind]
    if list then
      for _, fn in ipairs(list) do fn(...) end
    end
  end
  return bus
end

---------------------------------------------------------------- accounts
local function new_account(id, owner, kind, opening, bus)
  local balance = opening
  local history = {}
  local overdraft = kind == "checking" and 50000 or 0
  local frozen = false

  local self = { id = id, owner = owner, kind = kind }

  local function record(what, amount)
    history[#history + 1] = { what = what, amount = amount, balance = balance }
    if #history > 64 then table.remove(history, 1) end
  end

  function self.balance() return balance end
  function self.history_length() return #history end
  function self.freeze() frozen = true end

  function self.charge(fee)
    balance = balance - fee
    record("fee", fee)
    return fee
  end

  function self.deposit(amount)
    if frozen or amount <= 0 then return false end
    balance = balance + amount
    record("deposit", amount)
    bus.emit("deposit", self, amount)
    return true
  end

  function self.withdraw(amount)
    if frozen or amount <= 0 then return false end
    if balance - amount < -overdraft then
      bus.emit("rejected", self, amount)
      return false
    end
    balance = balance - amount
    record("withdraw", amount)
    bus.emit("withdraw", self, amount)
    if balance < 0 then bus.emit("overdrawn", self, balance) end
    return true
  end

  function self.apply_interest(rate_bp)
    -- rate in basis points per month; negative balances pay double
    local interest
    if balance >= 0 then
      interest = balance * rate_bp // 10000
    else
      interest = -((-balance) * rate_bp * 2 // 10000)
    end
    balance = balance + interest
    record("interest", interest)
    return interest
  end

  return self
end

---------------------------------------------------------------- bank
local function new_bank(name)
  local bus = new_bus()
  local accounts, by_owner = {}, {}
  local ledger = { transfers = 0, moved = 0, rejected = 0, fees = 0, overdrawn = 0, deposits = 0 }

  bus.subscribe("rejected", function() ledger.rejected = ledger.rejected + 1 end)
  local pending_fees = {}
  bus.subscribe("overdrawn", function(acct, bal)
    ledger.overdrawn = ledger.overdrawn + 1
    if bal < -40000 then
      -- fees are queued and charged at close of business, not re-entrantly
      pending_fees[#pending_fees + 1] = acct
    end
  end)
  bus.subscribe("deposit", function(acct, amount) ledger.deposits = ledger.deposits + amount end)

  local bank = { name = name, bus = bus, ledger = ledger }

  function bank.open(owner, kind, opening)
    local acct = new_account(#accounts + 1, owner, kind, opening, bus)
    accounts[#accounts + 1] = acct
    by_owner[owner] = by_owner[owner] or {}
    table.insert(by_owner[owner], acct)
    return acct
  end

  function bank.close_of_business()
    for i, acct in ipairs(pending_fees) do
      ledger.fees = ledger.fees + acct.charge(2500)
      pending_fees[i] = nil
    end
  end

  function bank.get(id) return accounts[id] end
  function bank.count() return #accounts end

  function bank.transfer(from, to, amount)
    if from == to then return false end
    if from.withdraw(amount) then
      to.deposit(amount)
      ledger.transfers = ledger.transfers + 1
      ledger.moved = ledger.moved + amount
      return true
    end
    return false
  end

  function bank.total()
    local sum = 0
    for _, a in ipairs(accounts) do sum = sum + a.balance() end
    return sum
  end

  function bank.month_end(rate_bp)
    local paid = 0
    for _, a in ipairs(accounts) do paid = paid + a.apply_interest(rate_bp) end
    return paid
  end

  function bank.owner_totals()
    local out = {}
    for owner, list in pairs(by_owner) do
      local sum = 0
      for _, a in ipairs(list) do sum = sum + a.balance() end
      out[#out + 1] = { owner = owner, total = sum }
    end
    table.sort(out, function(a, b)
      if a.total ~= b.total then return a.total > b.total end
      return a.owner < b.owner
    end)
    return out
  end

  return bank
end

---------------------------------------------------------------- simulation
local n = tonumber(arg and arg[1]) or 1700 -- days
local bank = new_bank("Closure Savings & Loan")
local FIRST = { "ada", "bob", "cy", "dee", "eve", "fay", "gus", "hal", "ivy", "jo" }
local LAST = { "lee", "moss", "nash", "orr", "park", "quinn", "ross", "shaw" }
for i = 1, 400 do
  local owner = FIRST[(i - 1) % #FIRST + 1] .. "_" .. LAST[(i * 7) % #LAST + 1]
  bank.open(owner, i % 3 == 0 and "savings" or "checking", rand(200000))
end

local big_moves = 0
bank.bus.subscribe("withdraw", function(acct, amount)
  if amount > 100000 then big_moves = big_moves + 1 end
end)

local interest_paid, start_total = 0, bank.total()
local deposited, withdrawn = 0, 0
for day = 1, n do
  for _ = 1, 300 do
    local a = bank.get(rand(bank.count()))
    local r = rand(10)
    if r <= 3 then
      local amt = rand(50000)
      if a.deposit(amt) then deposited = deposited + amt end
    elseif r <= 6 then
      local amt = rand(80000)
      if a.withdraw(amt) then withdrawn = withdrawn + amt end
    else
      bank.transfer(a, bank.get(rand(bank.count())), rand(120000))
    end
  end
  bank.close_of_business()
  if day % 30 == 0 then interest_paid = interest_paid + bank.month_end(25) end
end

local end_total = bank.total()
local L = bank.ledger
print("days", n, "accounts", bank.count())
print("transfers", L.transfers, "moved", L.moved, "rejected", L.rejected)
print("overdrawn events", L.overdrawn, "fees", L.fees, "big moves", big_moves)
print("interest", interest_paid)
print("conserved", end_total == start_total + deposited - withdrawn + interest_paid - L.fees, end_total)
local top = bank.owner_totals()
for i = 1, 3 do print(string.format("rich #%d %-10s %12.2f", i, top[i].owner, top[i].total / 100)) end
print("done")

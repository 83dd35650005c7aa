-- os.exit(false, true) closes the state from inside a hot loop: pending
-- to-be-closed variables and finalizers run, and the status is 1.
local obj = setmetatable({}, {__gc = function() print("finalizer ran") end})
local s = 0
do
  local c <close> = setmetatable({}, {__close = function() print("closed", s) end})
  for i = 1, 1000000 do
    s = s + i % 3
    if i == 12345 then print("exiting", i) os.exit(false, true) end
  end
end

-- sizes: 45000 2500
-- String building and pattern matching: synthetic web-server log lines built
-- with string.format, parsed back with string.match captures, aggregated per
-- path/status; gsub with patterns, tables and functions (templating, redaction,
-- slug making, camel-case splitting); gmatch word counting; CSV rendering and
-- parsing with table.concat; string.rep/reverse/upper for report formatting.

local seed = 8675309
local function rand(m)
  seed = (seed * 16807) % 2147483647
  return seed % m + 1
end

local METHODS = { "GET", "GET", "GET", "POST", "PUT", "DELETE" }
local PATHS = { "/", "/index.html", "/api/users", "/api/users/%d", "/api/orders/%d/items",
  "/static/app.js", "/static/style.css", "/search?q=%s", "/login", "/logout" }
local WORDS = { "lua", "tracing", "jit", "metatable", "coroutine", "closure", "upvalue",
  "register", "bytecode", "garbage", "collector", "string", "pattern", "table" }
local STATUS = { 200, 200, 200, 200, 201, 204, 301, 304, 400, 403, 404, 404, 500 }
local AGENTS = { "Mozilla/5.0 (X11; Linux x86_64)", "curl/7.88.1", "Wget/1.21", "BenchBot/2.0 (+contact user@example.org)" }

local function make_line(i)
  local path = PATHS[rand(#PATHS)]
  if path:find("%%d") then
    path = string.format(path, rand(5000))
  elseif path:find("%%s") then
    path = string.format(path, WORDS[rand(#WORDS)] .. "+" .. WORDS[rand(#WORDS)])
  end
  local ip = string.format("%d.%d.%d.%d", 10, rand(4) - 1, rand(256) - 1, rand(254))
  local ts = string.format("2024-%02d-%02dT%02d:%02d:%02d", rand(12), rand(28), rand(24) - 1, rand(60) - 1, i % 60)
  return string.format('%s - - [%s] "%s %s HTTP/1.1" %d %d "%s" user=%s@example.org',
    ip, ts, METHODS[rand(#METHODS)], path, STATUS[rand(#STATUS)], rand(50000), AGENTS[rand(#AGENTS)],
    WORDS[rand(#WORDS)])
end

local LINE_PATTERN = '^(%d+%.%d+%.%d+%.%d+) %- %- %[(%d+)%-(%d+)%-(%d+)T([%d:]+)%] "(%u+) (%S+) [^"]*" (%d+) (%d+) "([^"]*)"'

local function normalize_path(path)
  -- collapse numeric ids and query strings so similar requests group together
  return (path:gsub("/%d+", "/:id"):gsub("%?.*$", ""))
end

local function redact(line)
  return (line:gsub("([%w%.]+)@([%w%.]+)", function(user, host)
    return user:sub(1, 1) .. string.rep("*", #user - 1) .. "@" .. host
  end))
end

local function slug(text)
  return (text:lower():gsub("[^%w]+", "-"):gsub("^%-+", ""):gsub("%-+$", ""))
end

local function split_camel(name)
  return (name:gsub("(%l)(%u)", "%1 %2"))
end

local function expand(template, vars)
  return (template:gsub("%${(%w+)}", vars))
end

local function csv_escape(field)
  field = tostring(field)
  if field:find('[,"\n]') then
    return '"' .. field:gsub('"', '""') .. '"'
  end
  return field
end

local function csv_parse_line(line)
  local fields, pos = {}, 1
  while pos <= #line + 1 do
    if line:sub(pos, pos) == '"' then
      local buf, i = {}, pos + 1
      while true do
        local q = line:find('"', i, true)
        buf[#buf + 1] = line:sub(i, q - 1)
        if line:sub(q + 1, q + 1) == '"' then
          buf[#buf + 1] = '"'
          i = q + 2
        else
          pos = q + 2
          break
        end
      end
      fields[#fields + 1] = table.concat(buf)
    else
      local comma = line:find(",", pos, true) or #line + 1
      fields[#fields + 1] = line:sub(pos, comma - 1)
      pos = comma + 1
    end
  end
  return fields
end

local function hash(s, h)
  h = h or 0
  for i = 1, #s, 3 do h = (h * 131 + s:byte(i)) % 2147483647 end
  return h
end

---------------------------------------------------------------- driver
local n = tonumber(arg and arg[1]) or 45000
local by_path, by_status, by_month, words = {}, {}, {}, {}
local bytes, redacted_hash, parsed = 0, 0, 0
local csv_rows = { "ip,method,path,status,agent" }

for i = 1, n do
  local line = make_line(i)
  local ip, _, month, _, _, method, path, status, size, agent = line:match(LINE_PATTERN)
  if ip then
    parsed = parsed + 1
    local key = method .. " " .. normalize_path(path)
    by_path[key] = (by_path[key] or 0) + 1
    by_status[status] = (by_status[status] or 0) + 1
    by_month[tonumber(month)] = (by_month[tonumber(month)] or 0) + tonumber(size)
    bytes = bytes + tonumber(size)
    for w in path:gmatch("%a+") do words[w] = (words[w] or 0) + 1 end
    if i % 4 == 0 then
      csv_rows[#csv_rows + 1] = table.concat({ csv_escape(ip), method, csv_escape(path), status,
        csv_escape(agent .. ' "quoted"') }, ",")
    end
  end
  redacted_hash = hash(redact(line), redacted_hash)
end

-- CSV round trip
local csv = table.concat(csv_rows, "\n")
local rows_back, agents_ok = 0, 0
for row in csv:gmatch("[^\n]+") do
  local f = csv_parse_line(row)
  rows_back = rows_back + 1
  if f[5] and f[5]:find(' "quoted"$') then agents_ok = agents_ok + 1 end
end

-- report
local keys = {}
for k in pairs(by_path) do keys[#keys + 1] = k end
table.sort(keys, function(a, b)
  if by_path[a] ~= by_path[b] then return by_path[a] > by_path[b] end
  return a < b
end)
local report = {}
local row_tpl = "${rank}. ${route} ${count} ${bar}"
for i = 1, 5 do
  local k = keys[i]
  report[#report + 1] = expand(row_tpl, {
    rank = tostring(i), route = k, count = tostring(by_path[k]),
    bar = string.rep("#", by_path[k] * 40 // by_path[keys[1]]),
  })
end
print(table.concat(report, "\n"))

local statuses = {}
for s in pairs(by_status) do statuses[#statuses + 1] = s end
table.sort(statuses)
local sparts = {}
for _, s in ipairs(statuses) do sparts[#sparts + 1] = s .. "=" .. by_status[s] end
print("status " .. table.concat(sparts, " "))

local wlist = {}
for w, c in pairs(words) do wlist[#wlist + 1] = { w, c } end
table.sort(wlist, function(a, b) return a[2] > b[2] or (a[2] == b[2] and a[1] < b[1]) end)
print(string.format("top word %s x%d (%d distinct)", wlist[1][1], wlist[1][2], #wlist))
print("month 7 bytes", by_month[7] or 0, "total bytes", bytes)
print("parsed", parsed, "csv rows", rows_back, "quoted agents", agents_ok)
print("redacted hash", redacted_hash)
print(slug("  Hello, World: Lua 5.4 -- Tracing JIT!  "), split_camel("parseHttpRequestLine"),
  ("ecnamrofrep"):reverse():upper())
print("done")

-- Allocation-heavy Lua 5.4 workload for the tinymalloc bench (real group, "lua").
-- Usage: lua5.4 churn.lua [--scale] [default|quick|tiny]
-- Three phases, all deterministic (own LCG, no math.random):
--   trees   binary trees of tables (short-lived trees plus one long-lived tree)
--   tables  a string-keyed hash map with random inserts/deletes of array tables
--   strings concatenation, string.rep, string.format, table.concat, gsub
-- Prints "checksum <hex>", then a TMBENCH line, then "check: ok" when the checksum equals
-- the expected value for the scale; exits 1 with a message on stderr otherwise.
local scale = arg[1] or "default"
if scale == "--scale" then scale = arg[2] or "" end
local PARAMS = {
  --            tree depth, tree iterations, map ops, map size, string rounds
  default = {depth = 16, iters = 90, mapops = 3000000, mapsize = 50000, srounds = 600000},
  quick   = {depth = 14, iters = 24, mapops = 400000,  mapsize = 20000, srounds = 80000},
  tiny    = {depth = 10, iters = 4,  mapops = 20000,   mapsize = 2000,  srounds = 4000},
}
local EXPECTED = {
  default = "5d83b75f8dfd",
  quick   = "0c2c1610b5e0",
  tiny    = "21f9df53d3e2",
}
local P = PARAMS[scale]
if not P then
  io.stderr:write("churn.lua: unknown scale '" .. tostring(scale) .. "' (default|quick|tiny)\n")
  os.exit(2)
end

local MASK = 0xFFFFFFFFFFFF -- 48 bits
local seed = 12345
local function rnd(n) -- 0 .. n-1
  seed = (seed * 25214903917 + 11) & MASK
  return (seed >> 16) % n
end
local h = 0
local function mix(x) h = (h * 31 + x) & MASK end

local t0 = os.clock()
local ops = 0

-- phase 1: binary trees
local function make(d)
  if d == 0 then return {} end
  d = d - 1
  return {make(d), make(d)}
end
local function check(t)
  if t[1] == nil then return 1 end
  return 1 + check(t[1]) + check(t[2])
end
local long = make(P.depth)
for i = 1, P.iters do
  local d = 4 + (i % (P.depth - 3))
  local n = 0
  for _ = 1, (1 << (P.depth - d)) do
    n = n + check(make(d))
  end
  mix(n)
  ops = ops + n
end
mix(check(long))

-- phase 2: hash map churn
local map, live = {}, 0
for i = 1, P.mapops do
  local k = "k" .. rnd(P.mapsize)
  local v = map[k]
  if v then
    mix(#v + v[1])
    map[k] = nil
    live = live - 1
  else
    local len = 1 + rnd(24)
    local a = {}
    for j = 1, len do a[j] = i + j end
    map[k] = a
    live = live + 1
  end
end
ops = ops + P.mapops
mix(live)

-- phase 3: strings
local parts = {}
for i = 1, P.srounds do
  local s = string.format("%d:%s", i, string.rep("ab", 1 + rnd(40)))
  s = s .. "|" .. tostring(i * 7)
  if i % 3 == 0 then s = s:gsub("ab", "x") end
  parts[#parts + 1] = s
  if #parts >= 64 then
    local joined = table.concat(parts, ",")
    mix(#joined)
    parts = {}
  end
end
mix(#table.concat(parts, ","))
ops = ops + P.srounds

local secs = os.clock() - t0
local sum = string.format("%012x", h)
print("checksum " .. sum)
print(string.format('TMBENCH {"ops": %d, "seconds": %.6f, "ops_per_sec": %.1f, "clock": "cpu"}',
  ops, secs, ops / (secs > 0 and secs or 1e-9)))
if EXPECTED[scale] ~= sum then
  io.stderr:write("churn.lua: checksum " .. sum .. " != expected " .. EXPECTED[scale] .. "\n")
  os.exit(1)
end
print("check: ok")

-- wrk script of bench/api/run.sh: GET /api/v1/timelines/home?limit=20, each request with the
-- next token of the file given after "--" (one "token ..." per line), so every connection
-- rotates over all the seeded users.
local tokens = {}
local i = 0

function init(args)
  for line in io.lines(args[1]) do
    local t = line:match("^(%S+)")
    if t then tokens[#tokens + 1] = t end
  end
  math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0))
  i = math.random(#tokens)
end

function request()
  i = i % #tokens + 1
  return wrk.format("GET", "/api/v1/timelines/home?limit=20",
                    { ["Authorization"] = "Bearer " .. tokens[i] })
end

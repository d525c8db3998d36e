-- wrk script: cycles through a corpus of "path<TAB>user-agent" lines, one
-- request each, and prints the latency percentiles wrk's report lacks. An
-- optional third column is the client's address, sent as X-Forwarded-For
-- (loadtest/geo_corpus.py adds one per recipient).
--
-- RATE (requests/s over all connections, with CONNS the connection count)
-- paces each connection with wrk's delay() hook, for latency at a fixed
-- load below the peak: a connection waits CONNS/RATE seconds between
-- requests, less the time the answer took is not subtracted, so the rate
-- reached is a little under RATE (the report gives the real one).
local corpus = {}
local file = os.getenv("CORPUS")
local rate = tonumber(os.getenv("RATE") or "")
local conns = tonumber(os.getenv("CONNS") or "")
local gap_ms = (rate and conns) and (conns / rate * 1000) or nil
local owed = 0

function init(args)
  if file then
    for line in io.lines(file) do
      local path, ua, xff = line:match("^([^\t]+)\t([^\t]*)\t?([^\t]*)$")
      if path then
        local headers = { ["User-Agent"] = ua }
        if xff ~= "" then headers["X-Forwarded-For"] = xff end
        corpus[#corpus + 1] = { path, headers }
      end
    end
  end
  -- Threads start at different points of the corpus.
  idx = math.random(1, math.max(#corpus, 1))
end

if gap_ms then
  -- wrk waits whole milliseconds: carry the fraction to the next wait.
  function delay()
    owed = owed + gap_ms
    local d = math.floor(owed)
    owed = owed - d
    return d
  end
end

function request()
  if #corpus == 0 then
    return wrk.format("GET", os.getenv("FIXED_PATH") or "/")
  end
  local r = corpus[idx]
  idx = idx % #corpus + 1
  return wrk.format("GET", r[1], r[2])
end

function done(summary, latency, requests)
  local ok = summary.requests - summary.errors.status
  io.write(string.format(
    "RESULT requests=%d ok=%d errors=%d duration_us=%d p50_us=%d p99_us=%d p999_us=%d\n",
    summary.requests, ok,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout + summary.errors.status,
    summary.duration, latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end

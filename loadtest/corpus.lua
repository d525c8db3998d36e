-- wrk script: cycles through a corpus of "path<TAB>user-agent" lines, one
-- request each, and prints the latency percentiles wrk's report lacks.
local corpus = {}
local file = os.getenv("CORPUS")

function init(args)
  if file then
    for line in io.lines(file) do
      local path, ua = line:match("^([^\t]+)\t(.*)$")
      if path then corpus[#corpus + 1] = { path, ua } end
    end
  end
  -- Threads start at different points of the corpus.
  idx = math.random(1, math.max(#corpus, 1))
end

function request()
  if #corpus == 0 then
    return wrk.format("GET", os.getenv("FIXED_PATH") or "/")
  end
  local r = corpus[idx]
  idx = idx % #corpus + 1
  return wrk.format("GET", r[1], { ["User-Agent"] = r[2] })
end

function done(summary, latency, requests)
  local ok = summary.requests - summary.errors.status
  io.write(string.format(
    "RESULT requests=%d ok=%d errors=%d duration_us=%d p50_us=%d p99_us=%d p999_us=%d\n",
    summary.requests, ok,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout + summary.errors.status,
    summary.duration, latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end

#!/usr/bin/env bash
# A/B: two trackedge binaries, same corpus, file sink, alternating rounds of
# (each run in an empty directory, on its own embedded defaults)
# wrk on loopback; prints requests/s, p99, CPU microseconds per answered
# request (utime+stime of every thread of the server, from /proc, over the
# measured run) and peak RSS per round, and the medians per binary. CPU
# per request is the steadier figure on a shared machine. For before/after
# figures of a change that must not cost speed.
#
#   loadtest/ab.sh OLD_BINARY NEW_BINARY            # 3 rounds of 8 s each
#   ROUNDS=5 DURATION=10s loadtest/ab.sh old new
#   SINK=kafka loadtest/ab.sh old new               # both produce to one local tansu broker
#   GEO=1 loadtest/ab.sh old new                    # client addresses and geo databases, as run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
a=$(realpath "$1") b=$(realpath "$2")
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-1}
RECIPIENTS=${RECIPIENTS:-2000}
MINT=${MINT:-target/release/examples/mint_corpus}
SINK=${SINK:-file}
GEO=${GEO:-0}

work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }

secret=$(cd "$work" && "$a" gen-key)
"$MINT" "$secret" "$RECIPIENTS" tests/fixtures/agents.tsv >"$work/corpus.tsv"
geo_env=()
if [ "$GEO" = 1 ]; then
  mv "$work/corpus.tsv" "$work/corpus2.tsv"
  python3 loadtest/geo_corpus.py "$work/corpus2.tsv" "$work/corpus.tsv" "$work/geo"
  geo_env=(TRACKEDGE_GEOIP__CITY_DB=$work/geo/city.mmdb TRACKEDGE_GEOIP__ASN_DB=$work/geo/asn.mmdb
    TRACKEDGE_SERVER__TRUSTED_PROXIES='["127.0.0.1/32"]')
fi

kafka_env=()
if [ "$SINK" = kafka ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
  kport=$(free_port)
  (cd "$work" && exec tansu broker --listener-url "tcp://127.0.0.1:$kport" \
    --advertised-listener-url "tcp://127.0.0.1:$kport" --storage-engine memory://tansu/ >"$work/tansu.log" 2>&1) &
  broker=$!
  trap 'kill $broker 2>/dev/null; cleanup' EXIT
  wait_port "$kport"
  tansu topic create --broker "tcp://127.0.0.1:$kport" --partitions 3 trackedge.events >/dev/null
  kafka_env=(TRACKEDGE_SINK__KIND=kafka TRACKEDGE_KAFKA__BROKERS=127.0.0.1:$kport TRACKEDGE_KAFKA__SPOOL_DIR=$work/spool)
fi

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() { # binary -> "rps p99_us cpu_us_per_request rss"
  local port aport out
  port=$(free_port); aport=$(free_port)
  env TRACKEDGE_SERVER__LISTEN=127.0.0.1:$port TRACKEDGE_SERVER__ADMIN_LISTEN=127.0.0.1:$aport \
  TRACKEDGE_SIGNING__KEYS="[{id=\"load\",secret=\"$secret\"}]" \
  TRACKEDGE_SINK__FILE_PATH=$work/events.ndjson "${kafka_env[@]}" "${geo_env[@]}" \
    bash -c 'cd "$1" && exec "$2" serve --log-format json' _ "$work" "$1" >"$work/log" 2>&1 &
  pid=$!
  wait_port "$port"
  for _ in $(seq 100); do curl -sf "127.0.0.1:$aport/readyz" | grep -qx ready && break; sleep 0.1; done
  CORPUS=$work/corpus.tsv wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -s loadtest/corpus.lua "http://127.0.0.1:$port" >/dev/null
  local t0 t1 hz; hz=$(getconf CLK_TCK); t0=$(ticks "$pid")
  out=$(CORPUS=$work/corpus.tsv wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -s loadtest/corpus.lua "http://127.0.0.1:$port")
  t1=$(ticks "$pid")
  local n; n=$(echo "$out" | awk '/requests in/ {print $1}')
  local cpu; cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v n="$n" 'BEGIN {printf "%.2f", (b - a) / hz * 1e6 / n}')
  local rss; rss=$(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$pid/status")
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  rm -f "$work/events.ndjson"
  echo "$(echo "$out" | awk '/^Requests\/sec/ {print $2}') $(echo "$out" | grep '^RESULT' | tr ' ' '\n' | awk -F= '$1 == "p99_us" {print $2}') ${cpu} ${rss}MiB"
}

declare -a ra rb ca cb
for i in $(seq "$ROUNDS"); do
  x=$(run "$a"); y=$(run "$b")
  ra+=("${x%% *}"); rb+=("${y%% *}")
  ca+=("$(echo "$x" | cut -d' ' -f3)"); cb+=("$(echo "$y" | cut -d' ' -f3)")
  echo "round $i: A $x   B $y   (requests/s p99_us cpu_us/request peak-RSS)"
done
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
echo "median requests/s: A $(median "${ra[@]}")  B $(median "${rb[@]}")"
echo "median CPU us/request: A $(median "${ca[@]}")  B $(median "${cb[@]}")"

#!/usr/bin/env bash
# One command: trackedge (full pipeline, Kafka sink) against nginx's
# empty_gif and the stack's floor (loadtest/hyper-floor: bare hyper answering
# a static GIF, one current-thread runtime per core), same wrk settings,
# loopback only, bounded in time; then all three at a fixed rate (half of
# trackedge's peak) with oha, whose latencies are corrected for coordinated
# omission. Prints one table; loadtest/RESULTS.md keeps the latest.
#
#   loadtest/run.sh                 # 20 s per target, 64 connections
#   DURATION=30s CONNECTIONS=128 loadtest/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
DURATION=${DURATION:-20s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
RECIPIENTS=${RECIPIENTS:-10000}
# SINK=file measures trackedge without Kafka (events to a file), for comparison.
SINK=${SINK:-kafka}

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
if ((${#need[@]})); then
  echo "installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
export PATH="$HOME/.cargo/bin:/usr/sbin:$PATH"
command -v tansu >/dev/null || cargo install tansu --locked --features dynostore,libsql

echo "building release binary, corpus tool and the floor"
cargo build --release --locked --bin trackedge --example mint_corpus 2>&1 | tail -1
cargo build --release --manifest-path loadtest/hyper-floor/Cargo.toml --target-dir target/hyper-floor 2>&1 | tail -1
# oha: fixed-rate load with coordinated-omission correction (wrk2 is not packaged).
command -v oha >/dev/null || cargo install oha --locked 2>&1 | tail -1

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "nothing on port $1" >&2; return 1; }

secret=$(target/release/trackedge gen-key)
echo "minting $((RECIPIENTS * 5)) signed requests for $RECIPIENTS recipients"
target/release/examples/mint_corpus "$secret" "$RECIPIENTS" tests/fixtures/agents.tsv >"$work/corpus.tsv"

# Kafka: a local broker, the topic created as an operator would.
kport=$(free_port)
(cd "$work" && exec tansu broker --listener-url "tcp://127.0.0.1:$kport" \
  --advertised-listener-url "tcp://127.0.0.1:$kport" --storage-engine memory://tansu/ >"$work/tansu.log" 2>&1) &
pids+=($!)
wait_port "$kport"
tansu topic create --broker "tcp://127.0.0.1:$kport" --partitions 3 trackedge.events >/dev/null

# trackedge, full pipeline.
tport=$(free_port); aport=$(free_port)
TRACKEDGE_SERVER__LISTEN=127.0.0.1:$tport TRACKEDGE_SERVER__ADMIN_LISTEN=127.0.0.1:$aport \
TRACKEDGE_SIGNING__KEYS="[{id=\"load\",secret=\"$secret\"}]" \
TRACKEDGE_SINK__KIND=$SINK TRACKEDGE_SINK__FILE_PATH=$work/events.ndjson TRACKEDGE_KAFKA__BROKERS=127.0.0.1:$kport \
TRACKEDGE_KAFKA__SPOOL_DIR=$work/spool TRACKEDGE_STATS__MAX_CAMPAIGNS=1000 \
  target/release/trackedge serve --log-format json >"$work/trackedge.log" 2>&1 &
tpid=$!; pids+=($tpid)
wait_port "$tport"
for _ in $(seq 100); do curl -sf "127.0.0.1:$aport/readyz" | grep -qx ready && break; sleep 0.1; done

# CPU ticks and peak RSS, summed over the given processes.
cpu_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
hwm_kib() { local t=0 p; for p in "$@"; do t=$((t + $(awk '/VmHWM/ {print $2}' "/proc/$p/status"))); done; echo "$t"; }
metric() { curl -s "127.0.0.1:$aport/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

run_wrk() { # label "pids" url
  local label=$1 pid=$2 url=$3 t0 t1 out
  # shellcheck disable=SC2086
  t0=$(cpu_ticks $pid)
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -s loadtest/corpus.lua "$url")
  # shellcheck disable=SC2086
  t1=$(cpu_ticks $pid)
  echo "$out" >"$work/wrk-$label.txt"
  local r; r=$(echo "$out" | grep '^RESULT')
  local rps; rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
  local secs=${DURATION%s}
  local cpu; cpu=$(awk -v a="$t0" -v b="$t1" -v s="$secs" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.0f", (b - a) / hz / s * 100}')
  # shellcheck disable=SC2086
  echo "$label $rps $cpu $(hwm_kib $pid) $r"
}

echo "warming up trackedge (5 s)"
CORPUS=$work/corpus.tsv wrk -t"$THREADS" -c"$CONNECTIONS" -d5s -s loadtest/corpus.lua "http://127.0.0.1:$tport" >/dev/null
drain() { for _ in $(seq 300); do [ "$(metric trackedge_sink_queue_events)" = "0" ] && return; sleep 0.1; done; }
drain
before_delivered=$(metric trackedge_events_delivered_total)
before_accepted=$(metric trackedge_events_accepted_total)
echo "driving trackedge for $DURATION with $CONNECTIONS connections"
kpid=$(pgrep -f "tansu broker --listener-url tcp://127.0.0.1:$kport" | head -1)
k0=$(cpu_ticks "$kpid")
te=$(CORPUS=$work/corpus.tsv run_wrk trackedge "$tpid" "http://127.0.0.1:$tport")
broker_cpu=$(awk -v a="$k0" -v b="$(cpu_ticks "$kpid")" -v s="${DURATION%s}" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.0f", (b - a) / hz / s * 100}')

# Let Kafka take the rest, then compare events with answers.
drain
delivered=$(( $(metric trackedge_events_delivered_total) - before_delivered ))
accepted=$(( $(metric trackedge_events_accepted_total) - before_accepted ))

# Latency at a fixed load: half of trackedge's peak, for both servers.
# corpus.lua paces each connection with wrk's delay() hook; the answer time
# adds to every pause, so a 5 s run first finds the rate to ask for.
half=$(echo "$te" | awk '{printf "%d", $2 / 2}')
ask_for_half() { # url: the RATE that reaches about $half requests/s
  local got
  got=$(RATE=$half CONNS=$CONNECTIONS wrk -t"$THREADS" -c"$CONNECTIONS" -d5s -s loadtest/corpus.lua "$1" |
    awk '/^Requests\/sec/ {print $2}')
  awk -v h="$half" -v g="$got" 'BEGIN {printf "%d", h * h / g}'
}
echo "driving trackedge at half its peak ($half requests/s) for $DURATION"
ask=$(CORPUS=$work/corpus.tsv ask_for_half "http://127.0.0.1:$tport")
before_delivered=$(metric trackedge_events_delivered_total)
before_accepted=$(metric trackedge_events_accepted_total)
te_half=$(CORPUS=$work/corpus.tsv RATE=$ask CONNS=$CONNECTIONS run_wrk trackedge "$tpid" "http://127.0.0.1:$tport")
drain
half_delivered=$(( $(metric trackedge_events_delivered_total) - before_delivered ))
half_accepted=$(( $(metric trackedge_events_accepted_total) - before_accepted ))

# nginx empty_gif, same settings.
nport=$(free_port)
mkdir -p "$work/nginx"
sed -e "s|__PORT__|$nport|" -e "s|__PREFIX__|$work/nginx|" loadtest/nginx.conf >"$work/nginx/nginx.conf"
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" -g 'daemon off;' &
npid=$!; pids+=($npid)
wait_port "$nport"
echo "warming up nginx (5 s)"
FIXED_PATH=/pixel.gif wrk -t"$THREADS" -c"$CONNECTIONS" -d5s -s loadtest/corpus.lua "http://127.0.0.1:$nport" >/dev/null
echo "driving nginx empty_gif for $DURATION with $CONNECTIONS connections"
# nginx's master forks the workers that serve: sum CPU and memory over them.
nworkers=$(pgrep -P "$npid" | tr '\n' ' ')
ng=$(FIXED_PATH=/pixel.gif run_wrk nginx "$nworkers" "http://127.0.0.1:$nport")
echo "driving nginx at the same rate ($half requests/s) for $DURATION"
ask=$(FIXED_PATH=/pixel.gif ask_for_half "http://127.0.0.1:$nport")
ng_half=$(FIXED_PATH=/pixel.gif RATE=$ask CONNS=$CONNECTIONS run_wrk nginx "$nworkers" "http://127.0.0.1:$nport")

# The floor: bare hyper, one runtime per core, as trackedge serves.
fport=$(free_port)
MODE=percore ADDR=127.0.0.1:$fport target/hyper-floor/release/hyper-floor &
fpid=$!; pids+=($fpid)
wait_port "$fport"
echo "warming up the floor (5 s)"
FIXED_PATH=/pixel.gif wrk -t"$THREADS" -c"$CONNECTIONS" -d5s -s loadtest/corpus.lua "http://127.0.0.1:$fport" >/dev/null
echo "driving the floor for $DURATION with $CONNECTIONS connections"
fl=$(FIXED_PATH=/pixel.gif run_wrk floor "$fpid" "http://127.0.0.1:$fport")

# Fixed rate, coordinated omission corrected: every target at half of
# trackedge's peak; trackedge on one signed open URL of the corpus.
fixed_rate() { # url -> "p50_ms p99_ms p999_ms requests/s"
  oha -z "$DURATION" -q "$half" -c "$CONNECTIONS" --latency-correction --no-tui --output-format json "$1" 2>/dev/null |
    python3 -c 'import json,sys; d=json.load(sys.stdin); p=d["latencyPercentiles"]; print("%.3f %.3f %.3f %.0f" % (p["p50"]*1e3, p["p99"]*1e3, p["p99.9"]*1e3, d["summary"]["requestsPerSec"]))'
}
one_open=$(awk -F'\t' '$1 ~ /^\/o\// {print $1; exit}' "$work/corpus.tsv")
echo "fixed rate ($half requests/s, oha, latency corrected) for $DURATION each"
co_te=$(fixed_rate "http://127.0.0.1:$tport$one_open")
co_ng=$(fixed_rate "http://127.0.0.1:$nport/pixel.gif")
co_fl=$(fixed_rate "http://127.0.0.1:$fport/pixel.gif")

field() { echo "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k {print $2}'; }
ms() { awk -v us="$1" 'BEGIN {printf "%.3f", us / 1000}'; }
read -r _ te_rps _ <<<"$te"
read -r _ ng_rps _ <<<"$ng"
read -r _ fl_rps _ <<<"$fl"
row() { # label result rss-note events
  local _l rps cpu rss
  read -r _l rps cpu rss _ <<<"$2"
  echo "| $1 | $rps | $(ms "$(field "$2" p50_us)") | $(ms "$(field "$2" p99_us)") | $(ms "$(field "$2" p999_us)") | $((rss / 1024))$3 | $cpu | $(field "$2" ok) | $4 |"
}

cat <<TABLE

| target | requests/s | p50 ms | p99 ms | p99.9 ms | peak RSS MiB | CPU % | 2xx/3xx answers | events to Kafka |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
$(row "trackedge ($SINK sink; verify, UA, classify, stats), peak" "$te" "" "$delivered delivered of $accepted accepted")
$(row "nginx empty_gif (no work), peak" "$ng" " (2 workers)" "-")
$(row "floor: bare hyper, static GIF, peak" "$fl" "" "-")
$(row "trackedge at half its peak" "$te_half" "" "$half_delivered delivered of $half_accepted accepted")
$(row "nginx empty_gif at the same rate" "$ng_half" " (2 workers)" "-")

the Kafka broker (tansu) used ${broker_cpu}% CPU of the same 2 cores meanwhile
trackedge / nginx requests/s: $(awk -v a="$te_rps" -v b="$ng_rps" 'BEGIN {printf "%.2f", a / b}'); trackedge / floor: $(awk -v a="$te_rps" -v b="$fl_rps" 'BEGIN {printf "%.2f", a / b}')

| fixed rate $half requests/s (oha, coordinated omission corrected) | p50 ms | p99 ms | p99.9 ms | requests/s |
| --- | ---: | ---: | ---: | ---: |
| trackedge | $(echo "$co_te" | awk '{print $1" | "$2" | "$3" | "$4}') |
| nginx empty_gif | $(echo "$co_ng" | awk '{print $1" | "$2" | "$3" | "$4}') |
| floor | $(echo "$co_fl" | awk '{print $1" | "$2" | "$3" | "$4}') |
machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -r); wrk -t$THREADS -c$CONNECTIONS -d$DURATION, loopback, client and server on the same cores
half-load rows: wrk paced by corpus.lua's delay() hook toward $half requests/s (each connection waits between requests; no coordinated-omission correction as wrk2 has)
TABLE

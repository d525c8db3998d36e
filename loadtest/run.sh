#!/usr/bin/env bash
# The load test of issue 20: four targets side by side in one run, on
# 127.0.0.1 only, bounded in time:
#
#   trackedge  the full pipeline with the default configuration, but the Kafka
#              sink to a local tansu broker, geo databases (loadtest/geo_corpus.py)
#              and 127.0.0.1 as a trusted proxy (X-Forwarded-For carries each
#              recipient's address); the agent rules are on by default
#   nginx      nginx's empty_gif, no access log (loadtest/nginx.conf)
#   floor      bare hyper answering a static GIF, one runtime per core
#              (loadtest/hyper-floor, MODE=percore)
#   peer       the ops team's alternative: nginx empty_gif + JSON access log +
#              rsyslog imfile/omkafka to the same broker, another topic
#              (loadtest/peer/)
#
# ROUNDS rounds (median reported), the targets' order alternating from one
# round to the next; in each, every target gets `wrk -t1 -c64 -d$DURATION`
# over the signed corpus (loadtest/corpus.lua: 10,000 recipients' opens and
# clicks, 2,269 User-Agents, one client address per recipient). For each
# target: requests/s, p99, and CPU µs per answered request from /proc
# (utime+stime of every process and thread of the target: trackedge; nginx's
# master and workers; the floor; the peer's nginx plus rsyslogd), counted
# from the start of the load until every answered request is in Kafka (the
# records are read back, deduplicated by trackedge's event_id and nginx's
# $request_id: loadtest/kafka_count.py); the broker's CPU apart. Then a
# fixed-rate phase at half of trackedge's median peak (examples/fixedrate.rs,
# latency counted from each request's due time: coordinated omission
# corrected) for trackedge, the floor and the peer; trackedge's peak RSS
# (VmHWM); the books (answered = in Kafka) and the issue's ratios.
#
#   loadtest/run.sh                           # ROUNDS=5 DURATION=10s: ~10 min
#   ROUNDS=7 DURATION=20s loadtest/run.sh
#   TRACKEDGE_BIN=/path/to/trackedge MINT=/path/to/mint_corpus loadtest/run.sh
#   TLS=1 loadtest/run.sh                     # adds trackedge and nginx over HTTPS
#   KEEP=1 ...                                # keep the work directory (logs, wrk output)
#
# Installs what is missing: wrk, nginx-light, rsyslog-kafka (apt), tansu
# (cargo install, long), confluent-kafka in target/loadtest-venv (pip); builds
# trackedge and mint_corpus (unless TRACKEDGE_BIN is given), the floor
# (target/hyper-floor) and the peer's librdkafka (target/peer-librdkafka,
# loadtest/peer/build-librdkafka.sh). Everything it starts it stops by pid.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-1}
RECIPIENTS=${RECIPIENTS:-10000}
FIXED_ROUNDS=${FIXED_ROUNDS:-3}
FIXED_DURATION=${FIXED_DURATION:-${DURATION%s}}
TLS=${TLS:-0}
KEEP=${KEEP:-0}
export PATH="$HOME/.cargo/bin:/usr/sbin:$PATH"
secs=${DURATION%s}

# --- what the run needs -----------------------------------------------------
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx-light)
[ -f /usr/lib/x86_64-linux-gnu/rsyslog/omkafka.so ] || need+=(rsyslog-kafka)
command -v openssl >/dev/null || need+=(openssl)
if ((${#need[@]})); then
  echo "installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v tansu >/dev/null || { echo "installing tansu (cargo install, takes a while)"; cargo install tansu --locked --features dynostore,libsql; }
venv=$root/target/loadtest-venv
if ! "$venv/bin/python" -c 'import confluent_kafka' 2>/dev/null; then
  echo "installing confluent-kafka into $venv"
  python3 -m venv "$venv" && "$venv/bin/pip" install -q confluent-kafka
fi
py=$venv/bin/python

if [ -z "${TRACKEDGE_BIN:-}" ]; then
  echo "building trackedge, mint_corpus and fixedrate (release)"
  cargo build --release --locked --bin trackedge --example mint_corpus --example fixedrate 2>&1 | tail -1
  TRACKEDGE_BIN=$root/target/release/trackedge
fi
bin=$(realpath "$TRACKEDGE_BIN")
MINT=$(realpath "${MINT:-$root/target/release/examples/mint_corpus}")
FIXEDRATE=$root/target/release/examples/fixedrate
if [ ! -x "$FIXEDRATE" ] || [ examples/fixedrate.rs -nt "$FIXEDRATE" ]; then
  echo "building the fixed-rate client"
  nice -n 19 cargo build --release --locked --example fixedrate 2>&1 | tail -1
fi
floor_bin=$root/target/hyper-floor/release/hyper-floor
if [ ! -x "$floor_bin" ] || [ loadtest/hyper-floor/src/main.rs -nt "$floor_bin" ]; then
  echo "building the floor"
  nice -n 19 cargo build --release --manifest-path loadtest/hyper-floor/Cargo.toml --target-dir target/hyper-floor 2>&1 | tail -1
fi
lrk=$root/target/peer-librdkafka
TRACKEDGE=$root nice -n 19 loadtest/peer/build-librdkafka.sh "" "$lrk" >/dev/null

# --- processes, cleaned up by pid ---------------------------------------------
work=$(mktemp -d /tmp/trackedge-load.XXXXXX)
pids=()
cleanup() {
  local p
  exec 7>&- 8<&- 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$KEEP" = 1 ]; then echo "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 400); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "nothing on port $1" >&2; return 1; }
# A process and all its descendants.
tree() { local p c; for p in "$@"; do echo "$p"; for c in $(pgrep -P "$p" || true); do tree "$c"; done; done; }
# utime+stime in clock ticks of the given processes (each figure covers all
# of its threads, live and exited).
ticks() { local t=0 p; for p in "$@"; do t=$((t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}'))); done; echo "$t"; }
hz=$(getconf CLK_TCK)
# trackedge's CPU ticks by thread group, one "group utime stime" line each:
# its serving threads, its producing thread, librdkafka's threads, the rest.
thread_ticks() {
  local t
  for t in /proc/"$1"/task/*; do
    awk -v name="$(tr ' ' '_' <"$t/comm" 2>/dev/null)" '{sub(/.*\) /, ""); print name, $12, $13}' "$t/stat" 2>/dev/null || true
  done | awk '{g = "other"} $1 ~ /^trackedge-http/ {g = "serving"} $1 == "trackedge-kafka" {g = "producing"}
    $1 ~ /^rdk:/ {g = "librdkafka"} {u[g] += $2; s[g] += $3} END {for (g in u) print g, u[g], s[g]}'
}
# Whole-machine busy ticks (all cores), and a per-process CPU snapshot to
# name what else ran meanwhile.
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
snapshot() { python3 -c '
import os, sys
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            s = open(f"/proc/{p}/stat").read()
        except OSError:
            continue
        comm = s[s.index("(") + 1:s.rindex(")")].replace(" ", "_")
        f = s[s.rindex(")") + 2:].split()
        print(p, comm, int(f[11]) + int(f[12]))' >"$1"; }
hwm_kib() { local t=0 p; for p in "$@"; do t=$((t + $(awk '/VmHWM/ {print $2}' "/proc/$p/status"))); done; echo "$t"; }

# --- corpus and geo -------------------------------------------------------------
secret=$(cd "$work" && "$bin" gen-key)
echo "minting $((RECIPIENTS * 5)) signed requests for $RECIPIENTS recipients, with client addresses and geo databases"
"$MINT" "$secret" "$RECIPIENTS" tests/fixtures/agents.tsv >"$work/corpus2.tsv"
python3 loadtest/geo_corpus.py "$work/corpus2.tsv" "$work/corpus.tsv" "$work/geo"
export CORPUS=$work/corpus.tsv

# --- Kafka ------------------------------------------------------------------------
kport=$(free_port)
(cd "$work" && exec tansu broker --listener-url "tcp://127.0.0.1:$kport" \
  --advertised-listener-url "tcp://127.0.0.1:$kport" --storage-engine memory://tansu/ >"$work/tansu.log" 2>&1) &
kpid=$!; pids+=("$kpid")
wait_port "$kport"
tansu topic create --broker "tcp://127.0.0.1:$kport" --partitions 3 trackedge.events >/dev/null
tansu topic create --broker "tcp://127.0.0.1:$kport" --partitions 3 peer.pixels >/dev/null

# --- trackedge ---------------------------------------------------------------------
tport=$(free_port); aport=$(free_port)
cat >"$work/trackedge.toml" <<TOML
[server]
listen = "127.0.0.1:$tport"
admin_listen = "127.0.0.1:$aport"
trusted_proxies = ["127.0.0.1/32"]
[signing]
keys = [{ id = "load", secret = "$secret" }]
[sink]
kind = "kafka"
[kafka]
brokers = "127.0.0.1:$kport"
spool_dir = "$work/spool"
[geoip]
city_db = "$work/geo/city.mmdb"
asn_db = "$work/geo/asn.mmdb"
TOML
tls_ok=0
if [ "$TLS" = 1 ]; then
  if "$bin" check-config --config "$work/trackedge.toml" 2>/dev/null | grep -q '^tls_listen'; then
    tls_ok=1
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
      -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
    tsport=$(free_port)
    sed -i "s|^admin_listen = .*|&\ntls_listen = \"127.0.0.1:$tsport\"|" "$work/trackedge.toml"
    printf '[tls]\ncertificates = [{ cert_file = "%s", key_file = "%s" }]\n' "$work/tls.crt" "$work/tls.key" >>"$work/trackedge.toml"
  else
    echo "TLS=1: this trackedge has no server.tls_listen; no HTTPS rows"
  fi
fi
(cd "$work" && exec "$bin" serve --config "$work/trackedge.toml" --log-format json >"$work/trackedge.log" 2>&1) &
tpid=$!; pids+=("$tpid")
wait_port "$tport"
for _ in $(seq 100); do curl -sf "127.0.0.1:$aport/readyz" | grep -qx ready && break; sleep 0.1; done
metric() { curl -s "127.0.0.1:$aport/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

# --- nginx empty_gif, no log (and the HTTPS server beside it with TLS=1) ---------
nport=$(free_port)
mkdir -p "$work/nginx"
sed -e "s|__PORT__|$nport|" -e "s|__PREFIX__|$work/nginx|" loadtest/nginx.conf >"$work/nginx/nginx.conf"
if [ "$tls_ok" = 1 ]; then
  nsport=$(free_port)
  python3 - "$work/nginx/nginx.conf" "$nsport" "$work/tls.crt" "$work/tls.key" <<'PY'
import sys
p, port, crt, key = sys.argv[1:]
s = open(p).read().rstrip()
assert s.endswith("}")
s = s[:-1] + f"""    server {{
        listen 127.0.0.1:{port} ssl reuseport;
        ssl_certificate {crt};
        ssl_certificate_key {key};
        location / {{
            empty_gif;
            add_header Cache-Control "no-store, no-cache, must-revalidate, max-age=0, private";
        }}
    }}
}}
"""
open(p, "w").write(s)
PY
fi
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" -g 'daemon off;' &
npid=$!; pids+=("$npid")
wait_port "$nport"

# --- the floor -----------------------------------------------------------------------
fport=$(free_port)
MODE=percore ADDR=127.0.0.1:$fport "$floor_bin" &
fpid=$!; pids+=("$fpid")
wait_port "$fport"

# --- the peer: nginx + JSON access log + rsyslog omkafka -------------------------------
pport=$(free_port)
mkdir -p "$work/peer/rsyslog"
sed -e "s|__PORT__|$pport|" -e "s|__PREFIX__|$work/peer|" loadtest/peer/nginx-rsyslog-kafka.conf >"$work/peer/nginx.conf"
nginx -c "$work/peer/nginx.conf" -p "$work/peer" -g 'daemon off;' &
ppid_nginx=$!; pids+=("$ppid_nginx")
wait_port "$pport"
PERF_KAFKA_BROKER=127.0.0.1:$kport PERF_KAFKA_TOPIC=peer.pixels PERF_NRK_DIR=$work/peer/rsyslog \
PERF_NRK_LOG=$work/peer/access.log LD_LIBRARY_PATH=$lrk/lib \
  rsyslogd -n -f "$root/loadtest/peer/rsyslog-kafka.conf" -i "$work/peer/rsyslogd.pid" >"$work/peer/rsyslogd.log" 2>&1 &
rpid=$!; pids+=("$rpid")
sleep 1
kill -0 "$rpid" 2>/dev/null || { cat "$work/peer/rsyslogd.log"; echo "rsyslogd did not start" >&2; exit 1; }
grep -q "$lrk/lib/librdkafka" "/proc/$rpid/maps" || { echo "rsyslogd does not run the built librdkafka" >&2; exit 1; }

# --- the record counter ------------------------------------------------------------------
mkfifo "$work/kc.in" "$work/kc.out"
"$py" loadtest/kafka_count.py "127.0.0.1:$kport" trackedge.events:event_id peer.pixels:rid \
  <"$work/kc.in" >"$work/kc.out" 2>"$work/kc.log" &
kcpid=$!; pids+=("$kcpid")
exec 7>"$work/kc.in" 8<"$work/kc.out"
read -r -t 60 _ <&8 || { cat "$work/kc.log"; echo "the record counter did not start" >&2; exit 1; }
# kc wait|count TOPIC [N TIMEOUT] -> sets KC="distinct records seconds"
kc() { echo "$*" >&7; read -r -t 900 KC <&8; }
log_lines=0; log_bytes=0
# Lines nginx has written to the peer's access log (counted incrementally).
peer_lines() {
  local size; size=$(stat -c %s "$work/peer/access.log")
  if [ "$size" -gt "$log_bytes" ]; then
    log_lines=$((log_lines + $(tail -c +$((log_bytes + 1)) "$work/peer/access.log" | head -c $((size - log_bytes)) | wc -l)))
    log_bytes=$size
  fi
}

# --- one measurement -----------------------------------------------------------------------
# measure TARGET DURATION -> appends a line to rounds.tsv; echoes it too
#   target rps p99_us ok cpu_us_per_req broker_us_per_req window_s books_server books_kafka part
url_of() {
  case $1 in
    trackedge) echo "http://127.0.0.1:$tport" ;;
    nginx) echo "http://127.0.0.1:$nport" ;;
    floor) echo "http://127.0.0.1:$fport" ;;
    peer) echo "http://127.0.0.1:$pport" ;;
    trackedge-tls) echo "https://127.0.0.1:$tsport" ;;
    nginx-tls) echo "https://127.0.0.1:$nsport" ;;
  esac
}
procs_of() {
  case $1 in
    trackedge | trackedge-tls) tree "$tpid" ;;
    nginx | nginx-tls) tree "$npid" ;;
    floor) tree "$fpid" ;;
    peer) tree "$ppid_nginx" "$rpid" ;;
  esac
}
# Waits until everything the target answered is in Kafka: sets BOOKS="answered in_kafka".
settle() {
  case $1 in
    trackedge | trackedge-tls)
      local acc
      sleep 0.2
      acc=$(metric trackedge_events_accepted_total)
      kc wait trackedge.events "$acc" 300
      BOOKS="$acc ${KC%% *}" ;;
    peer)
      sleep 1.2  # nginx flushes its log buffer within 1 s
      peer_lines
      kc wait peer.pixels "$log_lines" 600
      BOOKS="$log_lines ${KC%% *}" ;;
    *) BOOKS="- -" ;;
  esac
}
measure() {
  local t=$1 d=$2 procs out t0 b0 w0 m0 t1 b1 w1 m1 rps p99 ok cpu bro rs0 rs1
  # shellcheck disable=SC2207
  procs=($(procs_of "$t"))
  t0=$(ticks "${procs[@]}"); b0=$(ticks "$kpid"); w0=$EPOCHREALTIME; m0=$(busy)
  [ "$t" = peer ] && rs0=$(ticks "$rpid")
  [ "$t" = trackedge ] && thread_ticks "$tpid" >"$work/threads0"
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$d" -s loadtest/corpus.lua "$(url_of "$t")")
  settle "$t"
  t1=$(ticks "${procs[@]}"); b1=$(ticks "$kpid"); w1=$EPOCHREALTIME; m1=$(busy)
  [ "$t" = peer ] && rs1=$(ticks "$rpid")
  [ "$t" = trackedge ] && thread_ticks "$tpid" >"$work/threads1"
  echo "$out" >>"$work/wrk-$t.txt"
  rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
  p99=$(echo "$out" | grep '^RESULT' | tr ' ' '\n' | awk -F= '$1 == "p99_us" {print $2}')
  ok=$(echo "$out" | grep '^RESULT' | tr ' ' '\n' | awk -F= '$1 == "ok" {print $2}')
  cpu=$(awk -v a="$t0" -v b="$t1" -v n="$ok" -v hz="$hz" 'BEGIN {printf "%.2f", (b - a) / hz * 1e6 / n}')
  bro=$(awk -v a="$b0" -v b="$b1" -v n="$ok" -v hz="$hz" 'BEGIN {printf "%.2f", (b - a) / hz * 1e6 / n}')
  if [ "$t" = trackedge ]; then
    join <(sort "$work/threads0") <(sort "$work/threads1") |
      awk -v n="$ok" -v hz="$hz" '{printf "%s %.2f %.2f\n", $1, ($4 - $2) / hz * 1e6 / n, ($5 - $3) / hz * 1e6 / n}' >>"$work/threads.tsv"
  fi
  local part=-
  [ "$t" = peer ] && part=$(awk -v a="$rs0" -v b="$rs1" -v n="$ok" -v hz="$hz" 'BEGIN {printf "%.2f", (b - a) / hz * 1e6 / n}')
  # machine: CPU of all cores busy over the window, in % of one core
  local mach; mach=$(awk -v a="$m0" -v b="$m1" -v s="$w0" -v e="$w1" -v hz="$hz" 'BEGIN {printf "%.0f", (b - a) / hz / (e - s) * 100}')
  LAST="$t $rps $p99 $ok $cpu $bro $(awk -v a="$w0" -v b="$w1" 'BEGIN {printf "%.1f", b - a}') $BOOKS $part $mach"
}

targets=(trackedge peer nginx floor)
[ "$tls_ok" = 1 ] && targets+=(trackedge-tls nginx-tls)

echo "warming up every target ($WARMUP each)"
for t in "${targets[@]}"; do
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" -s loadtest/corpus.lua "$(url_of "$t")" >/dev/null
  settle "$t"
done

started=$(date +%s)
echo "$ROUNDS rounds of $DURATION per target (wrk -t$THREADS -c$CONNECTIONS), order alternating"
echo "# round target rps p99_us answered cpu_us_per_req broker_us_per_req window_s books_server books_kafka rsyslog_us_per_req machine_busy_pct" >"$work/rounds.tsv"
snapshot "$work/procs0"; mb0=$(busy); mw0=$EPOCHREALTIME
for r in $(seq "$ROUNDS"); do
  order=("${targets[@]}")
  if ((r % 2 == 0)); then order=(); for ((i = ${#targets[@]} - 1; i >= 0; i--)); do order+=("${targets[$i]}"); done; fi
  for t in "${order[@]}"; do
    measure "$t" "$DURATION"
    echo "$r $LAST" >>"$work/rounds.tsv"
    echo "  round $r: $LAST"
  done
done

snapshot "$work/procs1"; mb1=$(busy); mw1=$EPOCHREALTIME
mine=" $(tree "$tpid" "$npid" "$fpid" "$ppid_nginx" "$rpid" "$kpid" "$kcpid" | tr '\n' ' ') "
others=$(awk -v mine="$mine" -v hz="$hz" -v secs="$(awk -v a="$mw0" -v b="$mw1" 'BEGIN {print b - a}')" '
  NR == FNR {t0[$1] = $3; next}
  !index(mine, " " $1 " ") {d = $3 - ($1 in t0 ? t0[$1] : 0); cpu[$2] += d}
  END {for (c in cpu) if (cpu[c] / hz / secs > 0.02) printf "%s %.0f%%\n", c, cpu[c] / hz / secs * 100}' \
  "$work/procs0" "$work/procs1" | sort -k2 -rn | head -8 | tr '\n' ',' | sed 's/,$//; s/,/, /g')
machine_busy=$(awk -v a="$mb0" -v b="$mb1" -v s="$mw0" -v e="$mw1" -v hz="$hz" 'BEGIN {printf "%.0f", (b - a) / hz / (e - s) * 100}')

# --- fixed rate: half of trackedge's median peak ----------------------------------------
half=$(awk '$2 == "trackedge" {print $3}' "$work/rounds.tsv" | sort -n | awk '{v[NR] = $1} END {printf "%d", v[int((NR + 1) / 2)] / 2}')
fixed_targets=(trackedge floor peer)
echo "fixed rate: $half requests/s (half of trackedge's median peak), ${FIXED_DURATION}s each, $FIXED_ROUNDS rounds (${FIXEDRATE#$root/})"
echo "# round target fixedrate's result" >"$work/fixed.tsv"
for r in $(seq "$FIXED_ROUNDS"); do
  order=("${fixed_targets[@]}")
  if ((r % 2 == 0)); then order=(peer floor trackedge); fi
  for t in "${order[@]}"; do
    port=$(url_of "$t"); port=${port##*:}
    res=$("$FIXEDRATE" --port "$port" --rate "$half" --duration "$FIXED_DURATION" \
      --connections "$CONNECTIONS" --corpus "$CORPUS")
    settle "$t"
    echo "$r $t $res" >>"$work/fixed.tsv"
    echo "  fixed $r: $t $res"
  done
done

# --- books and summary ------------------------------------------------------------------------
sleep 0.2
te_acc=$(metric trackedge_events_accepted_total)
te_del=$(metric trackedge_events_delivered_total)
te_drop=$(curl -s "127.0.0.1:$aport/metrics" | awk '$1 ~ /^trackedge_events_dropped_total/ {s += $2} END {print s + 0}')
kc count trackedge.events; te_kafka=$KC
sleep 1.2; peer_lines
kc count peer.pixels; peer_kafka=$KC
te_rss=$(awk '/VmHWM/ {print $2}' "/proc/$tpid/status")
peer_rss=$(hwm_kib $(tree "$ppid_nginx") "$rpid")
nginx_rss=$(hwm_kib $(tree "$npid"))
floor_rss=$(hwm_kib "$fpid")
elapsed=$(($(date +%s) - started))

python3 - "$work/rounds.tsv" "$work/fixed.tsv" <<PY
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if not l.startswith("#")]
fixed = [l.split() for l in open(sys.argv[2]) if not l.startswith("#")]
med = lambda xs: statistics.median(xs) if xs else float("nan")
def col(t, i):
    return [float(r[i]) for r in rows if r[1] == t and r[i] not in ("-", "")]
names = {
    "trackedge": "trackedge (Kafka sink, geo, agents; defaults otherwise)",
    "peer": "peer: nginx empty_gif + JSON log + rsyslog omkafka",
    "nginx": "nginx empty_gif (no log)",
    "floor": "bare hyper floor (percore)",
    "trackedge-tls": "trackedge over HTTPS",
    "nginx-tls": "nginx empty_gif over HTTPS (no log)",
}
targets = [t for t in names if any(r[1] == t for r in rows)]
m = {t: dict(rps=med(col(t, 2)), p99=med(col(t, 3)) / 1000, cpu=med(col(t, 5)), bro=med(col(t, 6)),
             rsys=med(col(t, 10))) for t in targets}
rounds = max(int(r[0]) for r in rows)
print()
print(f"| target (median of {rounds} rounds, wrk -t$THREADS -c$CONNECTIONS -d$DURATION) | req/s | p99 ms | CPU µs per answered request | broker CPU µs per request | answered (wrk, all rounds) |")
print("| --- | ---: | ---: | ---: | ---: | --- |")
for t in targets:
    ok = sum(int(r[4]) for r in rows if r[1] == t)
    bro = "%.2f" % m[t]["bro"] if t in ("trackedge", "peer", "trackedge-tls") else "–"
    extra = " (rsyslogd %.2f)" % m[t]["rsys"] if t == "peer" else ""
    print(f"| {names[t]} | {m[t]['rps']:,.0f} | {m[t]['p99']:.2f} | {m[t]['cpu']:.2f}{extra} | {bro} | {ok:,} |")
fx = {}
for r in fixed:
    kv = dict(x.split("=", 1) for x in r[3:] if "=" in x)
    fx.setdefault(r[1], []).append(kv)
print()
print(f"| fixed rate $half req/s, ${FIXED_DURATION}s, median of {len(fx.get('trackedge', []))} (${FIXEDRATE##*/}, coordinated omission corrected) | p50 ms | p99 ms | p99.9 ms | achieved req/s | client lag p99 µs | non-2xx/3xx + errors |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
fm = {}
for t in ("trackedge", "floor", "peer"):
    if t not in fx:
        continue
    g = lambda k: med([float(kv[k]) for kv in fx[t]])
    fm[t] = g("p99_us") / 1000
    bad = sum(int(kv["non2xx3xx"]) + int(kv["errors"]) for kv in fx[t])
    print(f"| {t} | {g('p50_us') / 1000:.2f} | {g('p99_us') / 1000:.2f} | {g('p999_us') / 1000:.2f} | {g('achieved'):,.0f} | {g('lag_p99_us'):.0f} | {bad} |")
te, pe, fl = m.get("trackedge"), m.get("peer"), m.get("floor")
print()
print("| issue 20 target | measured | goal |")
print("| --- | ---: | --- |")
print(f"| CPU per answered request, trackedge / peer | {te['cpu'] / pe['cpu']:.2f}x | < 1 |")
print(f"| CPU per answered request, trackedge / floor | {te['cpu'] / fl['cpu']:.2f}x | ≤ 1.8 |")
print(f"| requests/s, trackedge / peer | {te['rps'] / pe['rps']:.2f}x | > 1 |")
if "trackedge" in fm and "floor" in fm:
    print(f"| p99 at the fixed rate, trackedge / floor | {fm['trackedge'] / fm['floor']:.2f}x ({fm['trackedge']:.2f} / {fm['floor']:.2f} ms) | ≤ 1.15 |")
print(f"| trackedge's peak RSS (VmHWM, whole run) | {int('$te_rss') // 1024} MiB | ≤ 64 MiB |")
PY
cat <<EOF

books (whole run, warm-up included):
  trackedge: $te_acc events accepted, $te_del delivered (librdkafka), $te_drop dropped; in Kafka: ${te_kafka%% *} distinct event_id of $(echo "$te_kafka" | cut -d' ' -f2) records
  peer: $log_lines access-log lines; in Kafka: ${peer_kafka%% *} distinct \$request_id of $(echo "$peer_kafka" | cut -d' ' -f2) records
  balanced: trackedge $([ "$te_acc" = "${te_kafka%% *}" ] && echo yes || echo NO), peer $([ "$log_lines" = "${peer_kafka%% *}" ] && echo yes || echo NO)
peak RSS (VmHWM): trackedge $((te_rss / 1024)) MiB, peer $((peer_rss / 1024)) MiB (nginx master+workers + rsyslogd), nginx $((nginx_rss / 1024)) MiB, floor $((floor_rss / 1024)) MiB
machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -r); load, client and broker share the cores; $elapsed s of rounds
during the rounds the machine was ${machine_busy}% busy (of $(($(nproc) * 100))%); besides the targets, the broker and the record counter, over 2% of a core: ${others:-nothing} (processes that ended meanwhile, wrk and builds' compilers among them, are not named)
per-round figures: target/rounds.tsv, target/fixed.tsv, target/threads.tsv
EOF
# Where trackedge's CPU goes by thread, from the same /proc windows.
python3 - "$work/threads.tsv" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    g, u, s = line.split()
    rows.setdefault(g, []).append((float(u), float(s)))
print("trackedge's CPU by thread, µs per answered request (median of the rounds, user + system):")
total = 0.0
for g in ("serving", "producing", "librdkafka", "other"):
    if g not in rows:
        continue
    u = statistics.median(r[0] for r in rows[g])
    s = statistics.median(r[1] for r in rows[g])
    total += u + s
    print(f"  {g:<11} {u:6.2f} + {s:5.2f} = {u + s:6.2f}")
print(f"  {'sum':<11} {total:22.2f}")
PY
cp "$work/rounds.tsv" "$work/fixed.tsv" "$work/threads.tsv" "$root/target/" 2>/dev/null || true

#!/usr/bin/env bash
# Runs a local Kafka-compatible broker (tansu) for development on
# 127.0.0.1:9092, file-backed in data/tansu/, and creates trackedge's topic.
# Stop it with Ctrl-C. Install tansu first if needed:
#   cargo install tansu --version 0.6.0 --locked --features dynostore,libsql
set -euo pipefail
cd "$(dirname "$0")/.."
port="${KAFKA_PORT:-9092}"
topic="${KAFKA_TOPIC:-trackedge.events}"
mkdir -p data/tansu
cd data/tansu
tansu broker \
  --listener-url "tcp://127.0.0.1:${port}" \
  --advertised-listener-url "tcp://127.0.0.1:${port}" \
  --storage-engine "sqlite://broker.db" &
broker=$!
trap 'kill "$broker" 2>/dev/null' EXIT INT TERM
up=
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null && { up=1; break; }
  kill -0 "$broker" 2>/dev/null || break
  sleep 0.1
done
if [[ -z $up ]]; then
  echo "the broker did not start listening on 127.0.0.1:${port} (is the port taken?)" >&2
  exit 1
fi
# Creating a topic that is already there (every start after the first) is
# fine; any other failure is reported with the broker's own words, and ends
# the script (and so the broker).
if out=$(tansu topic create --broker "tcp://127.0.0.1:${port}" --partitions 3 "$topic" 2>&1); then
  echo "created topic $topic"
elif grep -qiE 'already.?exists' <<<"$out"; then
  echo "topic $topic exists"
else
  echo "cannot create topic $topic on 127.0.0.1:${port}:" >&2
  echo "$out" >&2
  exit 1
fi
echo "broker on 127.0.0.1:${port}; Ctrl-C stops it"
wait "$broker"

#!/usr/bin/env bash
# Runs a local Kafka-compatible broker (tansu) for development on
# 127.0.0.1:9092, file-backed in data/tansu/, and creates trackedge's topic.
# Stop it with Ctrl-C. Install tansu first if needed:
#   cargo install tansu --locked --features dynostore,libsql
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
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null && break
  sleep 0.1
done
tansu topic create --broker "tcp://127.0.0.1:${port}" --partitions 3 "$topic" >/dev/null 2>&1 \
  && echo "created topic $topic" || echo "topic $topic exists"
echo "broker on 127.0.0.1:${port}; Ctrl-C stops it"
wait "$broker"

#!/usr/bin/env bash
# Builds librdkafka as a shared library for the nginx+rsyslog→kafka peer (the load test).
#
# Why: Debian 12's librdkafka1 (2.0.2), which its rsyslog-kafka (omkafka) links,
# cannot talk to tansu: it misreads the tagged fields that tansu's
# ApiVersionResponse v3 carries (rd_kafka_buf_skip_tags skipped one byte too
# few; fixed in librdkafka 2.2.0) and fails every connection with
# "ApiVersionRequest failed: Local: Read underflow". So rsyslogd is run with
# this build on LD_LIBRARY_PATH (same soname, librdkafka.so.1): the librdkafka
# version trackedge itself links (rdkafka-sys's bundled copy, from the cargo
# registry), so both sides of the comparison produce through the same client.
#
# Usage: build-librdkafka.sh [SRC] [PREFIX]
#   SRC defaults to rdkafka-sys's librdkafka in ~/.cargo/registry (the version
#   in trackedge's Cargo.lock); PREFIX to /tmp/perf-librdkafka (loadtest/run.sh: target/peer-librdkafka).
set -eu
ver=$(grep -A1 'name = "rdkafka-sys"' "${TRACKEDGE:-.}/Cargo.lock" | sed -n 's/version = "\(.*\)"/\1/p')
src=${1:-$(ls -d "$HOME"/.cargo/registry/src/*/rdkafka-sys-"$ver"/librdkafka | head -1)}
prefix=${2:-/tmp/perf-librdkafka}
[ -f "$prefix/lib/librdkafka.so.1" ] && { echo "$prefix/lib/librdkafka.so.1 already built"; exit 0; }
work=$(mktemp -d /tmp/librdkafka-build.XXXX)
log=$work.log  # not inside: mklove takes any ./configure.* for a module
cp -a "$src"/. "$work"
cd "$work"
./configure --prefix="$prefix" --disable-ssl --disable-gssapi --disable-sasl --disable-curl \
    --disable-zstd >"$log" 2>&1 || { tail -30 "$log"; exit 1; }
make -j"$(nproc)" -C src >>"$log" 2>&1 || { tail -30 "$log"; exit 1; }
make -C src install >>"$log" 2>&1 || { tail -30 "$log"; exit 1; }
echo "built $prefix/lib/librdkafka.so.1 from $src"

#!/usr/bin/env python3
"""Issue 21's silent-socket attack at full size, against a trackedge it starts.

10,000 connections that never send a byte from 127.0.0.2 to the public port
and 1,500 to the admin port, held open; meanwhile a pixel and /livez from
127.0.0.1 are timed every half second for SECONDS (default 10). Prints each
probe's latency, the worst, and the refusals the server counted; exits
non-zero if a probe failed or took 100 ms or more. Everything started here is
stopped here, by process id; traffic stays on 127.0.0.0/8.

    loadtest/silent.py [path/to/trackedge]      # default target/release/trackedge
    SILENT_PUBLIC=10000 SILENT_ADMIN=1500 SECONDS=10 loadtest/silent.py
"""

import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/release/trackedge")
PUBLIC = int(os.environ.get("SILENT_PUBLIC", "10000"))
ADMIN = int(os.environ.get("SILENT_ADMIN", "1500"))
SECONDS = float(os.environ.get("SECONDS", "10"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def silent(port: int) -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.2", 0))
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", port))
    return s


def timed(url: str) -> tuple[int, float]:
    t = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            r.read()
            status = r.status
    except Exception:  # a refused or timed-out probe is what this measures
        status = 0
    return status, (time.monotonic() - t) * 1000


def main() -> int:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = PUBLIC + ADMIN + 1024
    if hard < need:
        print(f"needs {need} open files; the hard limit is {hard}", file=sys.stderr)
        return 2
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    port, admin = free_port(), free_port()
    work = tempfile.mkdtemp(prefix="trackedge-silent-")
    env = dict(
        os.environ,
        TRACKEDGE_SERVER__LISTEN=f"127.0.0.1:{port}",
        TRACKEDGE_SERVER__ADMIN_LISTEN=f"127.0.0.1:{admin}",
    )
    log = open(os.path.join(work, "trackedge.log"), "w")
    server = subprocess.Popen([BIN, "serve"], cwd=work, env=env, stdout=log, stderr=log)
    held: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 15
        while timed(f"http://127.0.0.1:{admin}/readyz")[0] != 200:
            if time.monotonic() > deadline or server.poll() is not None:
                print("trackedge did not become ready", file=sys.stderr)
                return 2
            time.sleep(0.1)
        for _ in range(PUBLIC):
            held.append(silent(port))
        for _ in range(ADMIN):
            held.append(silent(admin))
        print(f"holding {PUBLIC} silent sockets on the public port, {ADMIN} on the admin port")
        worst, failed = 0.0, 0
        end = time.monotonic() + SECONDS
        while time.monotonic() < end:
            ps, pt = timed(f"http://127.0.0.1:{port}/o/probe.gif")
            ls, lt = timed(f"http://127.0.0.1:{admin}/livez")
            print(f"  pixel {ps} in {pt:.1f} ms   /livez {ls} in {lt:.1f} ms")
            worst = max(worst, pt, lt)
            failed += (ps != 200) + (ls != 200)
            time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5) as r:
            refused = [
                line
                for line in r.read().decode().splitlines()
                if line.startswith("trackedge_connections_refused_total")
            ]
        print("worst probe %.1f ms, %d failed; %s" % (worst, failed, "; ".join(refused)))
        return 0 if failed == 0 and worst < 100 else 1
    finally:
        for s in held:
            s.close()
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Fixed-rate HTTP/1.1 load with latency corrected for coordinated omission.

    fixedrate.py --port PORT --rate R --duration S [--connections C]
                 [--corpus FILE] [--path /pixel.gif] [--warmup S]

Neither wrk2 nor oha is packaged here, so this is the load test's
fixed-rate client (what oha --latency-correction and wrk2 do): requests
are due on a fixed schedule, one every 1/R seconds from the start; each
due request goes out on a free keep-alive connection (up to C), and its
latency is counted from the moment it was due, not from when it was sent.
A server that stalls therefore pays for every request that waited behind
the stall, as a real client population's would, instead of the client
quietly sending less (coordinated omission).

One process, one thread, epoll on non-blocking sockets, requests encoded
in advance from the corpus (`path<TAB>user-agent[<TAB>client address]`,
the address sent as X-Forwarded-For, as corpus.lua does). It waits on
epoll with millisecond timeouts and sleeps the last fraction of a
millisecond with nanosleep (timer slack set to 1 µs), so a request leaves
within a few tens of µs of its due time while the client keeps up; how
late the client itself sent (due -> sent, for requests that found a free
connection) is reported as `lag_p99_us`, so a client that could not keep
up shows.
Prints one line of key=value pairs; latencies in µs.
"""

import argparse
import ctypes
import resource
import select
import socket
import time
from collections import deque

NS = 1_000_000_000


def set_timer_slack_ns(ns: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(29, ctypes.c_ulong(ns), 0, 0, 0)  # PR_SET_TIMERSLACK
    except Exception:
        pass


def requests_from(args) -> list:
    host = f"127.0.0.1:{args.port}"
    out = []
    if args.corpus:
        with open(args.corpus, encoding="utf-8") as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) < 2:
                    continue
                head = f"GET {parts[0]} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {parts[1]}\r\n"
                if len(parts) > 2 and parts[2]:
                    head += f"X-Forwarded-For: {parts[2]}\r\n"
                out.append((head + "\r\n").encode())
    if not out:
        out.append(f"GET {args.path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return out


class Conn:
    __slots__ = ("sock", "fd", "buf", "due", "sent", "busy")

    def __init__(self, port: int):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        self.sock, self.fd, self.buf = s, s.fileno(), b""
        self.due = self.sent = 0
        self.busy = False


def answer_end(buf: bytes) -> int:
    """Length of the first complete response in buf, or 0."""
    h = buf.find(b"\r\n\r\n")
    if h < 0:
        return 0
    i = buf.find(b"ontent-length:", 0, h)  # hyper writes it in lower case,
    if i < 0:
        i = buf.find(b"ontent-Length:", 0, h)  # nginx capitalized
    if i >= 0:
        j = buf.find(b"\r\n", i, h + 2)
        n = h + 4 + int(buf[i + 14:j])
        return n if len(buf) >= n else 0
    if b"\r\ntransfer-encoding: chunked" in buf[:h].lower():
        z = buf.find(b"\r\n0\r\n\r\n", h)
        return z + 7 if z >= 0 else 0
    return h + 4


def pct(sorted_vals: list, p: float) -> int:
    if not sorted_vals:
        return 0
    return sorted_vals[min(len(sorted_vals) - 1, int(len(sorted_vals) * p / 100))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--rate", type=float, required=True)
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--corpus")
    ap.add_argument("--path", default="/pixel.gif")
    args = ap.parse_args()
    set_timer_slack_ns(1000)

    reqs = requests_from(args)
    nreq = len(reqs)
    conns = [Conn(args.port) for _ in range(args.connections)]
    by_fd = {c.fd: c for c in conns}
    ep = select.epoll()
    for c in conns:
        ep.register(c.fd, select.EPOLLIN)
    free = deque(conns)
    backlog = deque()  # due times (ns) of requests waiting for a free connection

    gap = NS / args.rate
    mono = time.monotonic_ns
    t0 = mono() + 50_000_000
    t_measure = t0 + int(args.warmup * NS)
    t_end = t_measure + int(args.duration * NS)
    k = 0  # requests made due so far
    next_due = t0
    lat, lag = [], []
    ok = bad = errors = 0
    ri = 0
    starved_upto = 0
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)

    while True:
        now = mono()
        if next_due < t_end:
            while next_due <= now:
                backlog.append(next_due)
                k += 1
                next_due = t0 + int(k * gap)
        while backlog and free:
            c = free.popleft()
            c.due = backlog.popleft()
            c.sent = now
            c.busy = True
            try:
                c.sock.send(reqs[ri])
            except OSError:
                errors += 1
                c.busy = False
                continue
            ri = ri + 1 if ri + 1 < nreq else 0
            if c.due >= t_measure and c.due > starved_upto:
                lag.append((now - c.due) // 1000)
        if backlog:
            starved_upto = backlog[-1]  # these wait for a connection: the server's doing
        if next_due >= t_end and not backlog and len(free) == len(conns):
            break
        if now > t_end + 10 * NS:
            break  # answers missing 10 s after the end: counted as errors below
        # Wait for answers, or for the next request to fall due.
        if backlog or next_due >= t_end:
            timeout = 0.1
        else:
            wait = next_due - now
            if wait >= 1_000_000:
                timeout = (wait // 1_000_000) / 1000  # whole ms, never past the due time
            else:
                evs = ep.poll(0)
                if not evs:
                    time.sleep(wait / NS)
                    evs = ep.poll(0)
                timeout = None
        if timeout is not None:
            evs = ep.poll(timeout)
        if not evs:
            continue
        now = mono()
        for fd, _ in evs:
            c = by_fd[fd]
            try:
                data = c.sock.recv(65536)
            except BlockingIOError:
                continue
            if not data:
                errors += 1
                ep.unregister(fd)
                continue
            c.buf += data
            n = answer_end(c.buf)
            if n and c.busy:
                status = c.buf[9:12]
                c.buf = c.buf[n:]
                c.busy = False
                free.append(c)
                if c.due >= t_measure and c.due < t_end:
                    lat.append((now - c.due) // 1000)
                    if status[:1] in (b"2", b"3"):
                        ok += 1
                    else:
                        bad += 1

    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    missing = sum(1 for c in conns if c.busy)
    lat.sort()
    lag.sort()
    cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    total = k
    print(
        f"FIXED rate={args.rate:.0f} achieved={len(lat) / args.duration:.0f} answered={len(lat)} ok={ok} "
        f"non2xx3xx={bad} errors={errors + missing} p50_us={pct(lat, 50)} p90_us={pct(lat, 90)} "
        f"p99_us={pct(lat, 99)} p999_us={pct(lat, 99.9)} max_us={lat[-1] if lat else 0} "
        f"lag_p99_us={pct(lag, 99)} client_cpu_us_per_req={cpu * 1e6 / max(total, 1):.1f}"
    )


if __name__ == "__main__":
    main()

//! Fixed-rate HTTP/1.1 load with latency corrected for coordinated
//! omission: the load test's fixed-rate client (`loadtest/run.sh`), what
//! oha's `--latency-correction` and wrk2 do, neither of which is packaged
//! here.
//!
//! ```text
//! fixedrate --port PORT --rate R [--duration S] [--warmup S]
//!           [--connections C] [--corpus FILE] [--path /pixel.gif]
//! ```
//!
//! Requests fall due on a fixed schedule, one every 1/R seconds; each due
//! request goes out on a free keep-alive connection (up to C) and its
//! latency counts from the moment it was due, not from when it was sent,
//! so a server that stalls pays for every request that waited behind the
//! stall. One thread, epoll on non-blocking sockets, requests encoded in
//! advance from the corpus (`path<TAB>user-agent[<TAB>client address]`,
//! the address sent as X-Forwarded-For). It waits on epoll in whole
//! milliseconds and sleeps the last fraction with nanosleep (timer slack
//! 1 µs). The client's own lateness (due -> sent, for requests that found
//! a free connection) is reported as `lag_p99_us`, and its CPU per request
//! too: a client that cannot keep up shows. It replaced a Python client of
//! the same design that cost the shared cores half again as much CPU per
//! request.
//!
//! Prints one line of key=value pairs; latencies in µs.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

struct Args {
    port: u16,
    rate: f64,
    duration: f64,
    warmup: f64,
    connections: usize,
    corpus: Option<String>,
    path: String,
}

fn args() -> Args {
    let mut a = Args {
        port: 0,
        rate: 0.0,
        duration: 10.0,
        warmup: 2.0,
        connections: 64,
        corpus: None,
        path: "/pixel.gif".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it
            .next()
            .unwrap_or_else(|| usage(&format!("{k} needs a value")));
        let num = |v: &str| {
            v.parse::<f64>()
                .unwrap_or_else(|_| usage(&format!("{k}: {v}")))
        };
        match k.as_str() {
            "--port" => a.port = num(&v) as u16,
            "--rate" => a.rate = num(&v),
            "--duration" => a.duration = num(&v),
            "--warmup" => a.warmup = num(&v),
            "--connections" => a.connections = num(&v) as usize,
            "--corpus" => a.corpus = Some(v),
            "--path" => a.path = v,
            _ => usage(&format!("unknown argument {k}")),
        }
    }
    if a.port == 0 || a.rate <= 0.0 || a.connections == 0 {
        usage("--port and --rate are required");
    }
    a
}

fn usage(why: &str) -> ! {
    eprintln!("fixedrate: {why}\nusage: fixedrate --port PORT --rate R [--duration S] [--warmup S] [--connections C] [--corpus FILE] [--path P]");
    std::process::exit(64);
}

fn requests(a: &Args) -> Vec<Vec<u8>> {
    let host = format!("127.0.0.1:{}", a.port);
    let mut out = Vec::new();
    if let Some(path) = &a.corpus {
        let text = std::fs::read_to_string(path).expect("the corpus is readable");
        for line in text.lines() {
            let parts: Vec<&str> = line.split('\t').collect();
            if parts.len() < 2 {
                continue;
            }
            let mut head = format!(
                "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {}\r\n",
                parts[0], parts[1]
            );
            if let Some(ip) = parts.get(2).filter(|ip| !ip.is_empty()) {
                head.push_str(&format!("X-Forwarded-For: {ip}\r\n"));
            }
            head.push_str("\r\n");
            out.push(head.into_bytes());
        }
    }
    if out.is_empty() {
        out.push(format!("GET {} HTTP/1.1\r\nHost: {host}\r\n\r\n", a.path).into_bytes());
    }
    out
}

/// Length of the first complete response in `buf`, or 0.
fn answer_end(buf: &[u8]) -> usize {
    let Some(h) = find(buf, b"\r\n\r\n") else {
        return 0;
    };
    let head = String::from_utf8_lossy(&buf[..h]).to_ascii_lowercase();
    if let Some(i) = head.find("content-length:") {
        let rest = &head[i + 15..];
        let n: usize = rest
            .split("\r\n")
            .next()
            .unwrap_or("")
            .trim()
            .parse()
            .unwrap_or(0);
        let end = h + 4 + n;
        return if buf.len() >= end { end } else { 0 };
    }
    if head.contains("\r\ntransfer-encoding: chunked") {
        return find(&buf[h..], b"\r\n0\r\n\r\n").map_or(0, |z| h + z + 7);
    }
    h + 4
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 * p / 100.0) as usize).min(sorted.len() - 1)]
}

struct Conn {
    sock: TcpStream,
    buf: Vec<u8>,
    due: Instant,
    busy: bool,
    open: bool,
}

#[allow(unsafe_code)]
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

#[allow(unsafe_code)]
fn main() {
    let a = args();
    // SAFETY: PR_SET_TIMERSLACK on this thread; plain system calls.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000u64, 0u64, 0u64, 0u64) };
    let reqs = requests(&a);
    let mut conns: Vec<Conn> = (0..a.connections)
        .map(|_| {
            let sock = TcpStream::connect(("127.0.0.1", a.port)).expect("the server accepts");
            sock.set_nodelay(true).unwrap();
            sock.set_nonblocking(true).unwrap();
            Conn {
                sock,
                buf: Vec::with_capacity(4096),
                due: Instant::now(),
                busy: false,
                open: true,
            }
        })
        .collect();
    let ep = unsafe { libc::epoll_create1(0) };
    assert!(ep >= 0, "epoll_create1");
    for (i, c) in conns.iter().enumerate() {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: i as u64,
        };
        assert_eq!(
            unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, c.sock.as_raw_fd(), &mut ev) },
            0
        );
    }
    let mut free: VecDeque<usize> = (0..conns.len()).collect();
    let mut backlog: VecDeque<Instant> = VecDeque::new();
    let gap = Duration::from_secs_f64(1.0 / a.rate);
    let t0 = Instant::now() + Duration::from_millis(50);
    let t_measure = t0 + Duration::from_secs_f64(a.warmup);
    let t_end = t_measure + Duration::from_secs_f64(a.duration);
    let (mut k, mut next_due) = (0u64, t0);
    let (mut lat, mut lag) = (Vec::<u64>::new(), Vec::<u64>::new());
    let (mut ok, mut bad, mut errors) = (0u64, 0u64, 0u64);
    let mut ri = 0;
    let mut starved_upto = t0;
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; conns.len()];
    let mut chunk = vec![0u8; 65536];
    let cpu0 = cpu_seconds();
    loop {
        let now = Instant::now();
        if next_due < t_end {
            while next_due <= now {
                backlog.push_back(next_due);
                k += 1;
                next_due = t0 + gap.mul_f64(k as f64);
            }
        }
        while !backlog.is_empty() && !free.is_empty() {
            let i = free.pop_front().unwrap();
            let c = &mut conns[i];
            c.due = backlog.pop_front().unwrap();
            c.busy = true;
            if c.sock.write_all(&reqs[ri]).is_err() {
                errors += 1;
                c.busy = false;
                continue;
            }
            ri = (ri + 1) % reqs.len();
            if c.due >= t_measure && c.due > starved_upto {
                lag.push((now - c.due).as_micros() as u64);
            }
        }
        if let Some(&last) = backlog.back() {
            starved_upto = last; // these wait for a connection: the server's doing
        }
        if next_due >= t_end && backlog.is_empty() && free.len() == conns.len() {
            break;
        }
        if now > t_end + Duration::from_secs(10) {
            break; // answers missing 10 s after the end: counted as errors below
        }
        // Wait for answers, or for the next request to fall due.
        let timeout_ms = if !backlog.is_empty() || next_due >= t_end {
            100
        } else {
            let wait = next_due - now;
            if wait >= Duration::from_millis(1) {
                wait.as_millis() as i32 // whole ms, never past the due time
            } else {
                let n =
                    unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, 0) };
                if n == 0 {
                    std::thread::sleep(wait);
                }
                -1
            }
        };
        let n = if timeout_ms >= 0 {
            unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, timeout_ms) }
        } else {
            unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, 0) }
        };
        if n <= 0 {
            continue;
        }
        let now = Instant::now();
        for ev in &events[..n as usize] {
            let i = ev.u64 as usize;
            let c = &mut conns[i];
            match c.sock.read(&mut chunk) {
                Ok(0) => {
                    errors += 1;
                    if c.open {
                        c.open = false;
                        unsafe {
                            libc::epoll_ctl(
                                ep,
                                libc::EPOLL_CTL_DEL,
                                c.sock.as_raw_fd(),
                                std::ptr::null_mut(),
                            )
                        };
                    }
                    continue;
                }
                Ok(got) => c.buf.extend_from_slice(&chunk[..got]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                Err(_) => {
                    errors += 1;
                    continue;
                }
            }
            let end = answer_end(&c.buf);
            if end > 0 && c.busy {
                let status = c.buf.get(9).copied().unwrap_or(b'0');
                c.buf.drain(..end);
                c.busy = false;
                free.push_back(i);
                if c.due >= t_measure && c.due < t_end {
                    lat.push((now - c.due).as_micros() as u64);
                    if status == b'2' || status == b'3' {
                        ok += 1;
                    } else {
                        bad += 1;
                    }
                }
            }
        }
    }
    let cpu = cpu_seconds() - cpu0;
    let missing = conns.iter().filter(|c| c.busy).count() as u64;
    lat.sort_unstable();
    lag.sort_unstable();
    println!(
        "FIXED rate={:.0} achieved={:.0} answered={} ok={ok} non2xx3xx={bad} errors={} p50_us={} p90_us={} p99_us={} p999_us={} max_us={} lag_p99_us={} client_cpu_us_per_req={:.1}",
        a.rate,
        lat.len() as f64 / a.duration,
        lat.len(),
        errors + missing,
        pct(&lat, 50.0),
        pct(&lat, 90.0),
        pct(&lat, 99.0),
        pct(&lat, 99.9),
        lat.last().copied().unwrap_or(0),
        pct(&lag, 99.0),
        cpu * 1e6 / k.max(1) as f64,
    );
}

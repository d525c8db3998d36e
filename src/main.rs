//! The `trackedge` binary: wiring only; see the library for everything else.

/// mimalloc: the request path allocates a few small objects per event, and
/// glibc's malloc showed in profiles under load (figures in
/// `loadtest/RESULTS.md`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Ignores SIGHUP from the C runtime's initialisation on, before `main`
/// (and before the Rust runtime): a SIGHUP in a process's first
/// milliseconds must not end it (contract §6). The reloader's handler
/// replaces this once installed.
#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static IGNORE_SIGHUP_AT_START: extern "C" fn() = ignore_sighup;

#[cfg(target_os = "linux")]
extern "C" fn ignore_sighup() {
    // SAFETY: setting a signal's disposition to SIG_IGN touches no memory
    // of ours and is async-signal-safe; nothing else runs this early.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
}

fn main() -> std::process::ExitCode {
    // Before anything else: SIGHUP's default action ends the process, and
    // the contract says it never does, not even in the first milliseconds.
    // Until the reloader's own handler is installed, a SIGHUP only sets a
    // flag nobody reads (the reloader re-reads the config at start anyway).
    #[cfg(unix)]
    if let Err(e) = signal_hook::flag::register(
        signal_hook::consts::SIGHUP,
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
    ) {
        eprintln!("trackedge: cannot catch SIGHUP: {e}");
    }
    trackedge::cli::main()
}

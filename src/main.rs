//! The `trackedge` binary: wiring only; see the library for everything else.

/// mimalloc: the request path allocates a few small objects per event, and
/// glibc's malloc showed in profiles under load (figures in
/// `loadtest/RESULTS.md`).
///
/// With the `override` feature it is also the C allocator, so librdkafka's
/// nine allocations per record (freed on another thread) are mimalloc's
/// too. Its arenas are committed on use, not up front, and freed pages go
/// back at once: that halved the peak RSS under load (figures in
/// `loadtest/RESULTS.md`, round 5).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's options, before the first allocation that would use them.
#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static MIMALLOC_OPTIONS_AT_START: extern "C" fn() = mimalloc_options;

#[cfg(target_os = "linux")]
extern "C" fn mimalloc_options() {
    use libmimalloc_sys::{mi_option_set, mi_option_t};
    // The `mi_option_e` numbers of the mimalloc (v2) that libmimalloc-sys
    // builds, from its mimalloc.h; the crate names only some of them.
    const ARENA_EAGER_COMMIT: mi_option_t = 4;
    const PURGE_DELAY: mi_option_t = 15;
    // SAFETY: setting an option only writes mimalloc's option table; an
    // environment variable (MIMALLOC_…) set by an operator still wins,
    // since the table is only written when none is given.
    #[allow(unsafe_code)]
    unsafe {
        // getenv, not std::env: nothing may allocate before the options.
        if libc::getenv(c"MIMALLOC_ARENA_EAGER_COMMIT".as_ptr()).is_null() {
            mi_option_set(ARENA_EAGER_COMMIT, 0);
        }
        if libc::getenv(c"MIMALLOC_PURGE_DELAY".as_ptr()).is_null() {
            mi_option_set(PURGE_DELAY, 0);
        }
    }
}

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

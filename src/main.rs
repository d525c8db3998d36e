//! The `trackedge` binary: wiring only; see the library for everything else.

/// mimalloc: the request path allocates a few small objects per event
/// (strings from the token, the JSON buffer), and glibc's malloc showed up at
/// ~5% of CPU under load; see the commit that added it for the figures.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    trackedge::cli::main()
}

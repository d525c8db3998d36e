//! The `trackedge` binary: wiring only; see the library for everything else.

fn main() -> std::process::ExitCode {
    trackedge::cli::main()
}

//! The `smsgate` binary: the allocator, then [`smsgate::cli::main`].

use std::process::ExitCode;

// The gate allocates per record on several threads; mimalloc's per-thread
// heaps cost less per allocation than glibc's arenas and keep RSS lower.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    smsgate::cli::main()
}

//! The `modelwatch` binary; everything lives in the library.

// Ingest allocates and frees many short-lived, large Arrow buffers per
// request; glibc's allocator spent a fifth of the remote-write profile in
// malloc, page faults and consolidation (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    modelwatch::cli::main()
}

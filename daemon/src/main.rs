//! The `modelwatch` binary; everything lives in the library.

fn main() -> std::process::ExitCode {
    modelwatch::cli::main()
}

//! How the load generators (and `modelwatch bench sql`) answer: pretty JSON
//! with `--json`, else their own table, and an exit code that fails when a
//! request failed. One place, so every `bench` answers alike.

use std::process::ExitCode;

use serde::Serialize;

/// Prints `value` as pretty JSON when `json`, else hands it to `table`.
pub fn print<T: Serialize + ?Sized>(json: bool, value: &T, table: impl FnOnce(&T)) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    } else {
        table(value);
    }
}

/// Success when no request failed.
pub fn exit_code(errors: usize) -> ExitCode {
    if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

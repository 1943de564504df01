//! What the parser unit tests of both formats read a parse result with.

use super::{Config, Diagnostics};

/// The config, or a panic listing the errors.
pub(super) fn ok(result: Result<Config, Diagnostics>) -> Config {
    match result {
        Ok(c) => c,
        Err(e) => panic!("unexpected errors:\n{e}"),
    }
}

/// The errors as `line:column: message` (column 0 when there is none), or a panic.
pub(super) fn errs(result: Result<Config, Diagnostics>) -> Vec<String> {
    match result {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => {
            e.0.iter()
                .map(|d| format!("{}:{}: {}", d.line, d.column.unwrap_or(0), d.message))
                .collect()
        }
    }
}

/// The one error, or a panic if there are several.
pub(super) fn only_err(result: Result<Config, Diagnostics>) -> String {
    let e = errs(result);
    assert_eq!(e.len(), 1, "{e:#?}");
    e.into_iter().next().unwrap_or_default()
}

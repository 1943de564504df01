//! Our native TOML format.

use std::path::Path;

use super::{Config, Diagnostics};

/// Parses a TOML config.
pub fn parse(path: &Path, text: &str) -> Result<Config, Diagnostics> {
    let _ = (path, text);
    todo!("TOML parser")
}

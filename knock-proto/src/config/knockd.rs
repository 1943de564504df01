//! knockd.conf, read exactly as knockd reads it.

use std::path::Path;

use super::{Config, Diagnostics};

/// Parses a knockd.conf.
pub fn parse(path: &Path, text: &str) -> Result<Config, Diagnostics> {
    let _ = (path, text);
    todo!("knockd.conf parser")
}

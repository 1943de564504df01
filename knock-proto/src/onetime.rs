//! knockd's one-time sequence files.

//! knock-server: the capture daemon.

#[allow(dead_code)]
mod actions;

fn main() {}

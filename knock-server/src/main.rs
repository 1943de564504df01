//! knock-server: the capture daemon.

fn main() {}

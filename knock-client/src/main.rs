//! knock: the client.

fn main() {}

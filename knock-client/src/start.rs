//! The process entry on Linux with glibc: knock defines the C `main` itself (`#![no_main]`)
//! instead of going through std's runtime start-up.
//!
//! That start-up finds the main thread's stack for its stack-overflow handler with glibc's
//! `pthread_getattr_np`, which reads and `sscanf`s all of `/proc/self/maps`, and sets up an
//! alternate signal stack: about a tenth of the CPU of a whole knock, for a process that lives a
//! millisecond and recurses nowhere deep. What knock needs of it is done here: SIGPIPE ignored,
//! so that a closed standard output is an error (EPIPE) and a knock in progress completes;
//! standard output flushed at exit (`std::process::exit` does it); a panic reported by the
//! panic hook and exiting with status 101. `std::env::args` needs nothing: on glibc std reads
//! the arguments from its own `.init_array` hook.
//!
//! Everywhere else (musl, macOS, Windows) and in unit tests, `main.rs` has an ordinary `main`.

#![allow(unsafe_code)]

use std::ffi::{c_char, c_int};

/// The C entry point, called by glibc's `__libc_start_main`.
#[unsafe(no_mangle)]
extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    // SAFETY: `signal` with SIG_IGN installs no handler, and no other thread exists yet.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let status = std::panic::catch_unwind(crate::knock).unwrap_or(101);
    std::process::exit(c_int::from(status))
}

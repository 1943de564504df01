//! Links the unwinder into `knock` (libgcc_eh, what `gcc -static-libgcc` does) instead of
//! loading libgcc_s.so at every start, on Linux with glibc.
//!
//! std needs an unwinder (`_Unwind_*`) for panics and backtraces, and on glibc targets asks
//! for the shared libgcc_s. A knock lives about a millisecond, and loading that one library
//! (mapping and relocating it, and its constructor probing the CPU, which traps to the
//! hypervisor in a VM) cost about a tenth of it (BENCHMARKS.md, "One knock"). Named here, the
//! static archive comes on the link line before std's `-lgcc_s`, so it defines the unwinder and
//! the linker (`--as-needed`) leaves libgcc_s out. Whole, because std's references to it come
//! later on the line than this archive. Unwinding finds the binary's frames through
//! `dl_iterate_phdr` either way; nothing else in the process uses libgcc_s.
//!
//! Static builds (`crt-static`, musl) already link the unwinder statically.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let crt_static = var("CARGO_CFG_TARGET_FEATURE")
        .split(',')
        .any(|f| f == "crt-static");
    if var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu" && !crt_static
    {
        println!("cargo:rustc-link-lib=static:+whole-archive=gcc_eh");
    }
}

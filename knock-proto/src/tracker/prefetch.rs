//! Asking the CPU to bring a cache line in, without waiting for it.
//!
//! The batch path ([`Tracker::handle_batch`](super::Tracker::handle_batch)) and the index's
//! growth know the addresses they will read well before they read them. A plain load
//! (`black_box(*x)`) would start the miss too, but it has to complete before the CPU can
//! retire it: a few dozen misses in a row fill the CPU's reorder window and the loop stalls
//! on the first one. A prefetch instruction retires at once and leaves the miss in flight, so
//! as many lines as the CPU can track arrive in parallel while the loop goes on.

/// Starts bringing the cache line holding `value` into the CPU's caches. Changes nothing
/// and never faults. A no-op where no prefetch instruction is wired up.
#[inline(always)]
pub(super) fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint: it reads no memory architecturally and cannot fault,
    // whatever the address; here it is that of a live reference anyway.
    #[allow(unsafe_code)]
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(value).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

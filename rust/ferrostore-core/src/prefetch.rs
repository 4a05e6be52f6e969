//! Cache prefetch hints shared by the hot paths.

/// Prefetches `lines` cache lines from `p` (a hint: never faults, does nothing elsewhere
/// than on x86-64). `p` and the lines after it must lie in one allocation.
#[inline]
pub(crate) fn prefetch_lines(p: *const i8, lines: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        for line in 0..lines {
            // SAFETY: _mm_prefetch never faults; the address stays in the caller's slice.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64 * line)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, lines);
}

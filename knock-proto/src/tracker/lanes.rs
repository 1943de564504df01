//! Which lanes of an index chunk hold a given tag byte: the question every lookup, insert and
//! batch warm-up of the index (`tracker/index.rs`) asks once per chunk it reads.
//!
//! On x86_64 one SSE2 byte compare answers for all the lanes at once, as `hashbrown` does; a
//! flood's first knocks ask it about four times each (warm-up, lookup, insert, and again when
//! the index grows), which makes it one of the tracker's largest costs as plain integer
//! code (BENCHMARKS.md, the state machine). Elsewhere a few word operations answer (SWAR).
//! Both give lane `i` as bit `i`.

/// Lanes in a chunk (at most 16: one SSE2 register of bytes).
pub(super) const WIDTH: usize = 12;

/// The lanes of `tags` equal to `tag`, as bit `lane` of the result.
#[inline(always)]
pub(super) fn matching(tags: &[u8; WIDTH], tag: u8) -> u16 {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_movemask_epi8, _mm_set_epi64x, _mm_set1_epi8};
        let word = widen(tags);
        // SAFETY: these intrinsics only compute on values (no memory is read), and the build
        // enables SSE2, which they need (the `cfg` above; every x86_64 CPU has it). They are
        // safe to call only from Rust 1.87, after our rust-version.
        #[allow(unsafe_code)]
        let equal = unsafe {
            let v = _mm_set_epi64x((word >> 64) as i64, word as i64);
            _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(tag as i8)))
        };
        // Bits 0..16 hold the sixteen byte compares; the padding lanes past WIDTH go.
        (equal as u16) & LANES
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        matching_words(tags, tag)
    }
}

/// The bits of the lanes that exist.
const LANES: u16 = (1 << WIDTH) - 1;

/// The tags as one little-endian word, lane `i` in byte `i`, the padding zero.
#[inline(always)]
fn widen(tags: &[u8; WIDTH]) -> u128 {
    let mut bytes = [0u8; 16];
    bytes[..WIDTH].copy_from_slice(tags);
    u128::from_le_bytes(bytes)
}

/// [`matching`] in plain integer operations: where there is no SSE2, and to check it.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
fn matching_words(tags: &[u8; WIDTH], tag: u8) -> u16 {
    const LOW7: u128 = u128::from_ne_bytes([0x7f; 16]);
    let x = widen(tags) ^ u128::from_ne_bytes([tag; 16]);
    // A byte of x is 0 exactly where the tag matched: its high bit ends up set, and no other
    // (the low seven bits of a byte plus 0x7f never carry into the next byte).
    let high = !(((x & LOW7) + LOW7) | x | LOW7);
    (0..WIDTH).fold(0, |mask, lane| {
        mask | (u16::from((high >> (8 * lane + 7)) & 1 == 1) << lane)
    })
}

/// The lanes in a [`matching`] mask, lowest first.
#[inline(always)]
pub(super) fn lanes(mut mask: u16) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if mask == 0 {
            return None;
        }
        let lane = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        Some(lane)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_finds_exactly_the_equal_lanes() {
        let tags = [5, 0, 5, 0x85, 4, 6, 0xff, 5, 1, 0, 0x7f, 5];
        for probe in [0u8, 1, 4, 5, 6, 0x7f, 0x80, 0x85, 0xff] {
            let want: Vec<usize> = (0..WIDTH).filter(|&i| tags[i] == probe).collect();
            let got: Vec<usize> = lanes(matching(&tags, probe)).collect();
            assert_eq!(got, want, "tag {probe:#x}");
            let words: Vec<usize> = lanes(matching_words(&tags, probe)).collect();
            assert_eq!(words, want, "tag {probe:#x}, in words");
        }
    }

    #[test]
    fn the_padding_lanes_never_match() {
        // Zero is the tag of a free lane, and the padding is zero too.
        assert_eq!(matching(&[0; WIDTH], 0), LANES);
        assert_eq!(matching_words(&[0; WIDTH], 0), LANES);
        assert_eq!(matching(&[7; WIDTH], 0), 0);
    }

    proptest::proptest! {
        #[test]
        fn both_ways_agree(tags: [u8; WIDTH], tag: u8) {
            let want = (0..WIDTH).fold(0u16, |m, i| m | (u16::from(tags[i] == tag) << i));
            proptest::prop_assert_eq!(matching(&tags, tag), want);
            proptest::prop_assert_eq!(matching_words(&tags, tag), want);
        }
    }
}

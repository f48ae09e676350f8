//! Size classes: which block size serves a request, in O(1).
//!
//! Classes (44 in all):
//! - tiny, 1..=1024 bytes: 16-byte steps to 128, then four classes per
//!   doubling. They are the seed's C0..C7 (C0 and C1 = ..16, C2 = ..32,
//!   C3 = ..64, C4 = ..128, C5 = ..256, C6 = ..512, C7 = ..1024), each split
//!   into sub-bins (four per doubling above 128 bytes, so waste stays under 20%);
//! - small, 1025..=8192, and medium, 8193..=65536: four classes per doubling.
//!
//! Invariants:
//! - Every class size >= 16 is a multiple of 16, and blocks are laid out from a
//!   slab start aligned to the slab size, so a block of a class whose size is a
//!   multiple of A is A-aligned. Power-of-two classes exist from 16 to 65536,
//!   which is how over-aligned requests find a class (`class_for_aligned`).
//! - Tiny and small classes live in 64 KiB slabs, medium ones in 512 KiB slabs;
//!   every slab holds at least 8 blocks.

pub(crate) const NUM_CLASSES: usize = 44;
/// Classes below this index are tiny (the hot path's domain).
pub(crate) const TINY_CLASSES: usize = 20;
/// Classes from this index on live in medium (512 KiB) slabs.
pub(crate) const FIRST_MEDIUM: usize = 32;
pub(crate) const MAX_TINY: usize = 1024;
pub(crate) const MAX_SIZE: usize = 65536;

/// Block size of each class.
pub(crate) static CLASS_SIZE: [u32; NUM_CLASSES] = class_sizes();

/// Class for sizes 0..=1024, indexed by `(size + 7) >> 3`.
static TINY_LOOKUP: [u8; MAX_TINY / 8 + 1] = tiny_lookup();

const fn class_sizes() -> [u32; NUM_CLASSES] {
    let mut t = [0u32; NUM_CLASSES];
    // No 8-byte class: every free block needs two words (the free-list link
    // and the double-free tag, see `heap.rs`).
    let mut i = 0;
    while i < 8 {
        t[i] = 16 * (i as u32 + 1);
        i += 1;
    }
    // Four classes per doubling from 128: (5..=8) << shift.
    let mut shift = 5;
    while i < NUM_CLASSES {
        let mut j = 5;
        while j <= 8 && i < NUM_CLASSES {
            t[i] = j << shift;
            i += 1;
            j += 1;
        }
        shift += 1;
    }
    t
}

const fn tiny_lookup() -> [u8; MAX_TINY / 8 + 1] {
    let sizes = class_sizes();
    let mut t = [0u8; MAX_TINY / 8 + 1];
    let mut idx = 0;
    let mut class = 0;
    while idx < t.len() {
        let size = idx * 8;
        while (sizes[class] as usize) < size {
            class += 1;
        }
        t[idx] = class as u8;
        idx += 1;
    }
    t
}

/// The class of a request of `size` bytes with alignment <= 8 (<= 16 when size > 8).
/// `None` above `MAX_SIZE`.
#[inline(always)]
pub(crate) fn class_for(size: usize) -> Option<usize> {
    if size <= MAX_TINY {
        Some(TINY_LOOKUP[(size + 7) >> 3] as usize)
    } else if size <= MAX_SIZE {
        Some(class_above_tiny(size))
    } else {
        None
    }
}

#[inline]
fn class_above_tiny(size: usize) -> usize {
    let w = size - 1;
    let b = (usize::BITS - 1 - w.leading_zeros()) as usize; // floor(log2(w)), >= 10
    TINY_CLASSES + (b - 10) * 4 + ((w >> (b - 2)) & 3)
}

/// The class for `size` bytes aligned to `align` (a power of two), `None` when
/// no class block both fits and is aligned (the large path serves it then).
pub(crate) fn class_for_aligned(size: usize, align: usize) -> Option<usize> {
    let mut c = class_for(size.max(align))?;
    while !(CLASS_SIZE[c] as usize).is_multiple_of(align) {
        c += 1;
        if c == NUM_CLASSES {
            return None;
        }
    }
    Some(c)
}

/// Whether a class lives in medium (512 KiB) slabs.
#[inline]
pub(crate) fn is_medium(class: usize) -> bool {
    class >= FIRST_MEDIUM
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_sizes_are_ordered_and_aligned() {
        assert_eq!(CLASS_SIZE[0], 16);
        assert_eq!(CLASS_SIZE[TINY_CLASSES - 1], 1024);
        assert_eq!(CLASS_SIZE[FIRST_MEDIUM - 1], 8192);
        assert_eq!(CLASS_SIZE[NUM_CLASSES - 1], 65536);
        for w in CLASS_SIZE.windows(2) {
            assert!(w[0] < w[1]);
            assert!(w[1] % 16 == 0);
            assert!((w[1] - w[0]) as f64 / w[1] as f64 <= 0.5);
        }
    }

    #[test]
    fn every_size_maps_to_the_smallest_fitting_class() {
        for size in 0..=MAX_SIZE {
            let c = class_for(size).unwrap();
            assert!(CLASS_SIZE[c] as usize >= size, "size {size} class {c}");
            if c > 0 {
                assert!((CLASS_SIZE[c - 1] as usize) < size.max(1), "size {size}");
            }
        }
        assert_eq!(class_for(MAX_SIZE + 1), None);
    }

    #[test]
    fn aligned_classes_are_multiples_of_the_alignment() {
        for align in [16, 32, 64, 128, 256, 4096, 65536] {
            for size in [1, 17, 100, 1000, 5000, 40000] {
                if let Some(c) = class_for_aligned(size, align) {
                    let s = CLASS_SIZE[c] as usize;
                    assert!(s >= size && s.is_multiple_of(align));
                }
            }
        }
        assert_eq!(class_for_aligned(65536, 131072), None);
        assert_eq!(class_for_aligned(70000, 16), None);
    }
}

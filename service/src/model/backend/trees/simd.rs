//! The AVX2 kernel: eight trees at a time, one branch of each per instruction.
//!
//! Lane `j` of a group is tree `8g + j`. For branch slot `k` the kernel gathers the eight
//! features the eight branches read, compares them with the eight thresholds (`x <= t`), and
//! keeps in each lane the AND of the masks of the branches that were false; the lowest bit left
//! is the leaf ([`super::compiled`] explains the layout). No jump depends on the data, and the
//! eight trees' work overlaps in the vector unit.
//!
//! This is the one place with `unsafe` in the service: SIMD loads and gathers take raw
//! pointers. What makes each one sound is checked when the layout is built ([`Packed::check`])
//! or by the caller (`row.len() == width`), and said next to it.
#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m256i, _CMP_LE_OQ, _mm256_and_si256, _mm256_castps_si256, _mm256_cmp_ps, _mm256_i32gather_ps,
    _mm256_loadu_ps, _mm256_loadu_si256, _mm256_or_si256, _mm256_set1_epi32, _mm256_storeu_si256,
};

use super::compiled::{LANES, Packed};

/// Whether this processor runs the kernel (checked once per model load).
pub(super) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

/// Calls `each(tree, position)` for every tree in order, with the leaf position a NaN-free row
/// reaches. `row` must have `width` values, `width` greater than every feature index of the
/// layout, and [`available`] must be true.
#[inline]
pub(super) fn for_each_position(packed: &Packed, row: &[f32], each: impl FnMut(usize, u32)) {
    assert!(row.len() > packed.max_feature as usize && available());
    // SAFETY: AVX2 is present (asserted above); the row covers every feature index the
    // layout gathers (asserted above, indices checked by `Packed::check`).
    unsafe { positions_avx2(packed, row, each) }
}

#[target_feature(enable = "avx2")]
unsafe fn positions_avx2(packed: &Packed, row: &[f32], mut each: impl FnMut(usize, u32)) {
    let trees = packed.trees;
    let mut lanes = [0u32; LANES];
    for (g, &(start, end)) in packed.groups.iter().enumerate() {
        let mut keep = _mm256_set1_epi32(-1);
        for slot in start as usize..end as usize {
            let at = slot * LANES;
            // SAFETY: `Packed::check` made `features`, `thresholds` and `masks` hold
            // `LANES` values for every slot of every group, so `at..at + LANES` is in bounds;
            // every feature index is below `row.len()` (checked by the caller), so the gather
            // reads inside `row`.
            let (x, t, m) = unsafe {
                let index = _mm256_loadu_si256(packed.features.as_ptr().add(at).cast::<__m256i>());
                (
                    _mm256_i32gather_ps::<4>(row.as_ptr(), index),
                    _mm256_loadu_ps(packed.thresholds.as_ptr().add(at)),
                    _mm256_loadu_si256(packed.masks.as_ptr().add(at).cast::<__m256i>()),
                )
            };
            let le = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_LE_OQ>(x, t));
            keep = _mm256_and_si256(keep, _mm256_or_si256(m, le));
        }
        // SAFETY: `lanes` is `LANES` u32s, exactly one 256-bit store.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast::<__m256i>(), keep) };
        let first = g * LANES;
        for (j, lane) in lanes
            .iter()
            .enumerate()
            .take(trees.saturating_sub(first).min(LANES))
        {
            each(first + j, lane.trailing_zeros());
        }
    }
}

//! The AVX2 kernels: one branch of eight trees, or of one tree for eight rows, per instruction.
//!
//! - One row ([`for_each_position`]): lane `j` of a group is tree `8g + j`. For branch slot `k`
//!   the kernel gathers the eight features the eight branches read, compares them with the
//!   eight thresholds (`x <= t`), and keeps in each lane the AND of the masks of the branches
//!   that were false; the lowest bit left is the leaf ([`super::compiled`] explains the layout).
//! - Sixteen rows ([`sum_block`], [`for_each_block`]), in two registers of eight: lane `r` of
//!   half `h` is row `8h + r` of a block whose features were transposed (feature-major), so a
//!   branch reads its feature for eight rows with one load instead of a gather, its threshold
//!   and mask are broadcast once for both halves, and the leaf's value is added to eight rows'
//!   sums in one vector add (the same float add, per row, in tree order).
//!
//! No jump depends on the data.
//!
//! This is the one place with `unsafe` in the service: SIMD loads and gathers take raw
//! pointers. What makes each one sound is checked when the layout is built ([`Packed::check`])
//! or by the caller (`row.len() == width`), and said next to it.
#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m256, __m256i, _CMP_LE_OQ, _mm256_add_epi32, _mm256_add_ps, _mm256_and_si256,
    _mm256_castps_si256, _mm256_cmp_ps, _mm256_cvtepi32_ps, _mm256_i32gather_ps, _mm256_loadu_ps,
    _mm256_loadu_si256, _mm256_or_si256, _mm256_set1_epi32, _mm256_set1_ps, _mm256_setzero_ps,
    _mm256_setzero_si256, _mm256_srli_epi32, _mm256_storeu_ps, _mm256_storeu_si256,
    _mm256_sub_epi32,
};

use super::packed::{LANES, Packed, ROWS};

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

/// The single-target sums of a block of [`ROWS`] NaN-free rows, tree by tree in order.
/// `cols` holds the block feature-major: `cols[f * ROWS + r]` is feature `f` of row `r`, for
/// every feature up to the layout's largest.
pub(super) fn sum_block(packed: &Packed, cols: &[f32]) -> [f32; ROWS] {
    assert!(cols.len() > packed.max_feature as usize * ROWS + ROWS - 1 && available());
    // SAFETY: AVX2 is present and `cols` covers every feature's rows (asserted above).
    unsafe { sum_block_avx2(packed, cols) }
}

/// Calls `each(tree, positions)` for every tree in order, with the leaf positions the
/// [`ROWS`] NaN-free rows of a transposed block reach (see [`sum_block`]).
pub(super) fn for_each_block(packed: &Packed, cols: &[f32], each: impl FnMut(usize, &[u32; ROWS])) {
    assert!(cols.len() > packed.max_feature as usize * ROWS + ROWS - 1 && available());
    // SAFETY: as in `sum_block`.
    unsafe { positions_block_avx2(packed, cols, each) }
}

/// The block's two halves, [`LANES`] rows each.
const HALVES: usize = ROWS / LANES;
const _: () = assert!(HALVES == 2 && ROWS == HALVES * LANES);

/// The leaf position each row of the block reaches in `tree`, per half: the lowest bit left of
/// the AND of the masks of its false branches. Both halves share each branch's threshold and
/// mask (one broadcast each for sixteen rows).
#[target_feature(enable = "avx2")]
unsafe fn tree_positions(packed: &Packed, tree: usize, cols: &[f32]) -> [__m256i; HALVES] {
    let (start, end) = packed.tree_nodes[tree];
    let mut keep = [_mm256_set1_epi32(-1); HALVES];
    for n in start as usize..end as usize {
        let node = &packed.nodes[n];
        let threshold = _mm256_set1_ps(node.threshold);
        let mask = _mm256_set1_epi32(node.mask as i32);
        for (half, keep) in keep.iter_mut().enumerate() {
            // SAFETY: `node.feature <= max_feature` (`Packed::check`) and the caller asserted
            // that `cols` holds ROWS values for every feature up to it.
            let x = unsafe {
                _mm256_loadu_ps(
                    cols.as_ptr()
                        .add(node.feature as usize * ROWS + half * LANES),
                )
            };
            let le = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_LE_OQ>(x, threshold));
            *keep = _mm256_and_si256(*keep, _mm256_or_si256(mask, le));
        }
    }
    [lowest_bit(keep[0]), lowest_bit(keep[1])]
}

/// The index of each lane's lowest set bit, from the exponent of its exact float value.
#[target_feature(enable = "avx2")]
fn lowest_bit(keep: __m256i) -> __m256i {
    let lowest = _mm256_and_si256(keep, _mm256_sub_epi32(_mm256_setzero_si256(), keep));
    let exponent = _mm256_srli_epi32::<23>(_mm256_castps_si256(_mm256_cvtepi32_ps(lowest)));
    // Bit 31 converts to -2^31: its sign bit sits above the exponent, mask it off.
    let exponent = _mm256_and_si256(exponent, _mm256_set1_epi32(0xff));
    _mm256_sub_epi32(exponent, _mm256_set1_epi32(127))
}

#[target_feature(enable = "avx2")]
unsafe fn sum_block_avx2(packed: &Packed, cols: &[f32]) -> [f32; ROWS] {
    let mut sums: [__m256; HALVES] = [_mm256_setzero_ps(); HALVES];
    for tree in 0..packed.trees {
        // SAFETY: the caller's contract (see `sum_block`).
        let positions = unsafe { tree_positions(packed, tree, cols) };
        let base = _mm256_set1_epi32(packed.leaf_base[tree] as i32);
        for (sum, positions) in sums.iter_mut().zip(positions) {
            // SAFETY: a position is below the tree's leaf count (the leaf a row reaches is
            // always left, and is the lowest bit left), so `leaf_base + position` indexes its
            // own leaves in `leaf_values`.
            let values = unsafe {
                _mm256_i32gather_ps::<4>(
                    packed.leaf_values.as_ptr(),
                    _mm256_add_epi32(positions, base),
                )
            };
            *sum = _mm256_add_ps(*sum, values);
        }
    }
    let mut out = [0.0f32; ROWS];
    for (half, sum) in sums.into_iter().enumerate() {
        // SAFETY: `out[half * LANES..]` holds LANES floats, one 256-bit store.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(half * LANES), sum) };
    }
    out
}

#[target_feature(enable = "avx2")]
unsafe fn positions_block_avx2(
    packed: &Packed,
    cols: &[f32],
    mut each: impl FnMut(usize, &[u32; ROWS]),
) {
    let mut lanes = [0u32; ROWS];
    for tree in 0..packed.trees {
        // SAFETY: the caller's contract (see `for_each_block`).
        let positions = unsafe { tree_positions(packed, tree, cols) };
        for (half, positions) in positions.into_iter().enumerate() {
            // SAFETY: `lanes[half * LANES..]` holds LANES u32s, one 256-bit store.
            unsafe {
                _mm256_storeu_si256(
                    lanes.as_mut_ptr().add(half * LANES).cast::<__m256i>(),
                    positions,
                );
            }
        }
        each(tree, &lanes);
    }
}

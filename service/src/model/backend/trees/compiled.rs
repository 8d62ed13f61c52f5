//! Scoring rows with the packed trees: blocks of rows to the row-block kernel, single rows to
//! the one-row kernel, rows with a NaN (and every row when the trees do not pack) to the walk
//! with ONNX Runtime's rules ([`super::ensemble::Tree::leaf`]); then the leaves reached to the
//! output row ([`super::aggregate`]).
//!
//! Sums stay in float, tree after tree in the listed order, as ONNX Runtime adds them: that,
//! not the layout, is what makes the outputs equal to the bit.

use super::aggregate::{self, Scratch};
use super::ensemble::{Ensemble, Kind};
use super::packed::{Packed, ROWS};

#[derive(Debug)]
pub(super) struct Compiled {
    pub(super) ensemble: Ensemble,
    packed: Option<Packed>,
    /// The target every tree adds exactly one weight to, if any ([`aggregate::one_target`]):
    /// then a row is one float sum, which the kernels compute without listing the leaves.
    one_target: Option<u32>,
    /// Why the kernels do not apply (logged when the model loads).
    pub(super) slow_reason: Option<String>,
}

impl Compiled {
    /// `kernel`: use the AVX2 kernels where the trees pack (false: every row takes the walk,
    /// what a processor without AVX2 runs; for comparison).
    pub(super) fn new(ensemble: Ensemble, kernel: bool) -> Self {
        let packed = if !kernel {
            Err("the kernels are turned off".to_owned())
        } else if kernel_available() {
            Packed::build(&ensemble)
        } else {
            Err("this processor has no AVX2".to_owned())
        };
        let (packed, slow_reason) = match packed {
            Ok(packed) => (Some(packed), None),
            Err(reason) => (None, Some(reason)),
        };
        Self {
            one_target: aggregate::one_target(&ensemble),
            ensemble,
            packed,
            slow_reason,
        }
    }

    /// Writes `rows.len() / width` output rows of `ensemble.outputs` columns to `out`.
    pub(super) fn score(&self, rows: &[f32], width: usize, out: &mut [f32]) {
        let n = self.ensemble.outputs;
        let mut cols = Vec::new();
        let mut scratch = Scratch::default();
        if let Some(target) = self.one_target {
            let finish = |sum: f32, out: &mut [f32], scratch: &mut Scratch| {
                if n == 1 && self.ensemble.kind == Kind::Regressor {
                    out[0] = aggregate::finish_single(&self.ensemble, sum, true);
                } else {
                    aggregate::finish_one_target(&self.ensemble, target, sum, scratch, out);
                }
            };
            in_blocks(rows, width, out, n, |block| match &self.packed {
                Some(packed) if transpose(&block, width, &mut cols) => {
                    let sums = block_sums(packed, &cols);
                    for ((_, out), sum) in block.into_iter().zip(sums) {
                        finish(sum, out, &mut scratch);
                    }
                }
                _ => {
                    for (row, out) in block {
                        finish(self.sum(row), out, &mut scratch);
                    }
                }
            });
            return;
        }
        let trees = self.ensemble.trees.len();
        let mut leaves = vec![0u32; trees * ROWS];
        in_blocks(rows, width, out, n, |block| {
            match &self.packed {
                Some(packed) if transpose(&block, width, &mut cols) => {
                    block_positions(packed, &cols, |tree, positions| {
                        for (r, &position) in positions.iter().enumerate() {
                            leaves[r * trees + tree] =
                                packed.leaf_ids[(packed.leaf_base[tree] + position) as usize];
                        }
                    });
                }
                _ => {
                    for (r, (row, _)) in block.iter().enumerate() {
                        self.leaves(row, &mut leaves[r * trees..(r + 1) * trees]);
                    }
                }
            }
            for (r, (_, out)) in block.into_iter().enumerate() {
                let leaves = &leaves[r * trees..(r + 1) * trees];
                aggregate::finish_row(&self.ensemble, leaves, &mut scratch, out);
            }
        });
    }

    /// A single-target sum over the trees, in tree order, in float.
    fn sum(&self, row: &[f32]) -> f32 {
        let mut sum = 0.0f32;
        match &self.packed {
            Some(packed) if !row.iter().any(|x| x.is_nan()) => {
                kernel(packed, row, |tree, position| {
                    sum += packed.leaf_values[(packed.leaf_base[tree] + position) as usize];
                });
            }
            _ => {
                for tree in &self.ensemble.trees {
                    let (start, _) = tree.leaves[tree.leaf(row) as usize];
                    sum += self.ensemble.weights[start as usize].value;
                }
            }
        }
        sum
    }

    /// The leaf each tree reaches for one row.
    fn leaves(&self, row: &[f32], leaves: &mut [u32]) {
        match &self.packed {
            Some(packed) if !row.iter().any(|x| x.is_nan()) => {
                kernel(packed, row, |tree, position| {
                    leaves[tree] = packed.leaf_ids[(packed.leaf_base[tree] + position) as usize];
                });
            }
            _ => {
                for (tree, leaf) in self.ensemble.trees.iter().zip(leaves.iter_mut()) {
                    *leaf = tree.leaf(row);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn kernel_available() -> bool {
    super::simd::available()
}

#[cfg(not(target_arch = "x86_64"))]
fn kernel_available() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
fn kernel(packed: &Packed, row: &[f32], each: impl FnMut(usize, u32)) {
    super::simd::for_each_position(packed, row, each);
}

#[cfg(not(target_arch = "x86_64"))]
fn kernel(_: &Packed, _: &[f32], _: impl FnMut(usize, u32)) {
    unreachable!("no packed layout is built without the kernel")
}

#[cfg(target_arch = "x86_64")]
fn block_sums(packed: &Packed, cols: &[f32]) -> [f32; ROWS] {
    super::simd::sum_block(packed, cols)
}

#[cfg(not(target_arch = "x86_64"))]
fn block_sums(_: &Packed, _: &[f32]) -> [f32; ROWS] {
    unreachable!("no packed layout is built without the kernel")
}

#[cfg(target_arch = "x86_64")]
fn block_positions(packed: &Packed, cols: &[f32], each: impl FnMut(usize, &[u32; ROWS])) {
    super::simd::for_each_block(packed, cols, each);
}

#[cfg(not(target_arch = "x86_64"))]
fn block_positions(_: &Packed, _: &[f32], _: impl FnMut(usize, &[u32; ROWS])) {
    unreachable!("no packed layout is built without the kernel")
}

/// Calls `each` with the rows and their output rows (`n` values each), [`ROWS`] at a time (the
/// last block may be shorter).
fn in_blocks<'a>(
    rows: &'a [f32],
    width: usize,
    out: &'a mut [f32],
    n: usize,
    mut each: impl FnMut(Vec<(&'a [f32], &'a mut [f32])>),
) {
    let mut pairs = rows
        .chunks_exact(width)
        .zip(out.chunks_exact_mut(n))
        .peekable();
    while pairs.peek().is_some() {
        each(pairs.by_ref().take(ROWS).collect());
    }
}

/// A block of NaN-free rows, feature-major into `cols` (`cols[f * ROWS + r]`); a block of
/// fewer than [`ROWS`] rows fills the rest with copies of its first row, whose results the
/// caller leaves out. False (and `cols` untouched) for a block of fewer than [`MIN_BLOCK_ROWS`]
/// or one with a NaN, which the one-row paths take.
fn transpose<T>(block: &[(&[f32], T)], width: usize, cols: &mut Vec<f32>) -> bool {
    if block.len() < MIN_BLOCK_ROWS || block.iter().any(|(row, _)| row.iter().any(|x| x.is_nan())) {
        return false;
    }
    cols.resize(width * ROWS, 0.0);
    let first = block[0].0;
    let rows = block.iter().map(|(row, _)| *row);
    for (r, row) in rows.chain(std::iter::repeat(first)).take(ROWS).enumerate() {
        for (f, &x) in row.iter().enumerate() {
            cols[f * ROWS + r] = x;
        }
    }
    true
}

/// Rows from which a block takes the row-block kernel, padded to [`ROWS`]: below, the one-row
/// kernel costs less than a padded block (`engine-rul`: 5 µs a row alone, a block of sixteen
/// about as much as four alone).
const MIN_BLOCK_ROWS: usize = 4;

#[cfg(test)]
mod tests {
    use super::super::ensemble::{Aggregate, Branch, Child, Mode, PostTransform, Tree, Weight};
    use super::*;

    /// A random tree of `leaves` leaves over `width` features, with the given modes.
    fn random_tree(
        seed: &mut u64,
        leaves: usize,
        width: u32,
        modes: &[Mode],
        weights: &mut Vec<Weight>,
    ) -> Tree {
        let mut next = move || {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *seed
        };
        let mut tree = Tree {
            root: Child::Leaf(0),
            branches: Vec::new(),
            leaves: Vec::new(),
        };
        let new_leaf = |tree: &mut Tree, weights: &mut Vec<Weight>, v: u64| {
            weights.push(Weight {
                target: 0,
                value: (v % 1000) as f32 / 7.0 - 50.0,
            });
            tree.leaves
                .push((weights.len() as u32 - 1, weights.len() as u32));
            Child::Leaf(tree.leaves.len() as u32 - 1)
        };
        tree.root = new_leaf(&mut tree, weights, next());
        // Split a random leaf until there are enough.
        let mut open = vec![tree.root];
        while open.len() < leaves {
            let pick = (next() as usize) % open.len();
            let Child::Leaf(_) = open[pick] else {
                unreachable!()
            };
            let a = new_leaf(&mut tree, weights, next());
            let b = new_leaf(&mut tree, weights, next());
            let threshold = [-1.0, 0.0, 0.5, 1.0, 2.0][(next() % 5) as usize];
            tree.branches.push(Branch {
                feature: (next() % u64::from(width)) as u32,
                threshold,
                mode: modes[(next() as usize) % modes.len()],
                missing_true: next() % 2 == 0,
                if_true: a,
                if_false: b,
            });
            let branch = Child::Branch(tree.branches.len() as u32 - 1);
            // Re-point whoever pointed at the split leaf.
            let old = open[pick];
            if tree.root == old {
                tree.root = branch;
            }
            for br in tree.branches.iter_mut() {
                if br.if_true == old {
                    br.if_true = branch;
                }
                if br.if_false == old {
                    br.if_false = branch;
                }
            }
            open.swap_remove(pick);
            open.extend([a, b]);
        }
        tree
    }

    #[test]
    fn the_kernel_reaches_the_walks_leaf() {
        if !kernel_available() {
            return;
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut weights = Vec::new();
        let modes = [Mode::Leq, Mode::Lt, Mode::Gte, Mode::Gt];
        // Tree sizes 1..=32 leaves, and a count of trees that is not a multiple of LANES.
        let trees: Vec<Tree> = (0..203)
            .map(|i| random_tree(&mut seed, 1 + i % 32, 4, &modes, &mut weights))
            .collect();
        let ensemble = Ensemble {
            kind: Kind::Regressor,
            trees,
            weights,
            outputs: 1,
            aggregate: Aggregate::Sum,
            post_transform: PostTransform::None,
            base_values: vec![],
            max_feature: 3,
        };
        let compiled = Compiled::new(ensemble, true);
        assert!(compiled.slow_reason.is_none(), "{:?}", compiled.slow_reason);
        let values = [
            -2.0f32,
            -1.0,
            -0.0,
            0.0,
            0.25,
            0.5,
            1.0,
            1.5,
            2.0,
            3.0,
            f32::INFINITY,
        ];
        let mut leaves = vec![0; compiled.ensemble.trees.len()];
        for a in values {
            for b in values {
                let row = [a, b, -a, b * 0.5];
                compiled.leaves(&row, &mut leaves);
                for (tree, &leaf) in compiled.ensemble.trees.iter().zip(&leaves) {
                    assert_eq!(leaf, tree.leaf(&row), "row {row:?}");
                }
                let walked: f32 = compiled.ensemble.trees.iter().fold(0.0, |sum, tree| {
                    let (start, _) = tree.leaves[tree.leaf(&row) as usize];
                    sum + compiled.ensemble.weights[start as usize].value
                });
                assert_eq!(compiled.sum(&row).to_bits(), walked.to_bits());
            }
        }
        // The same rows through the row-block kernel (121 rows: full blocks and a short one).
        let rows: Vec<f32> = values
            .iter()
            .flat_map(|&a| values.iter().flat_map(move |&b| [a, b, -a, b * 0.5]))
            .collect();
        let mut out = vec![0.0; rows.len() / 4];
        compiled.score(&rows, 4, &mut out);
        for (row, got) in rows.chunks(4).zip(&out) {
            assert_eq!(got.to_bits(), compiled.sum(row).to_bits(), "row {row:?}");
        }
    }
}

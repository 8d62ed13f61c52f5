//! The trees laid out for the AVX2 kernel ([`super::simd`]): every branch evaluated without a
//! jump, eight trees side by side, the leaf found from a bit vector.
//!
//! ONNX Runtime walks each tree from the root, one data-dependent jump per level; on gradient
//! boosted trees about half of those jumps are mispredicted. Here each tree of at most 32
//! leaves is evaluated the QuickScorer way (Lucchese et al., SIGIR 2015) inside the tree: its
//! leaves are numbered left to right (the true child on the left), every branch carries the
//! mask of the leaves it rules out when its comparison is false (its true subtree), the row's
//! mask starts full and is AND-ed with the mask of every false branch, and the leaf reached is
//! the lowest bit left. A tree's branches are independent of each other, and eight trees share
//! each instruction. The comparisons are brought to one form first, `x <= t` (a `<` becomes
//! `<=` the next float down, a `>` or `>=` swaps the children), which is exact for every value
//! but NaN; a row with a NaN in it takes ONNX Runtime's own walk instead ([`Tree::leaf`]), as do
//! all rows of a model with a tree of more than 32 leaves or with equality branches, and every
//! model on a processor without AVX2.
//!
//! Sums stay in float, tree after tree in the listed order, as ONNX Runtime adds them
//! ([`super::aggregate`]): that, not the layout, is what makes the outputs equal to the bit.
//!
//! Written plainly in Rust, the branch-free select of a mask compiles back into a jump (LLVM's
//! x86 cmov conversion turns it into one inside the loop; measured slower than ONNX Runtime),
//! hence explicit vector instructions.

use super::aggregate::{self, Scratch};
use super::ensemble::{Child, Ensemble, Kind, Mode, Tree};

/// Trees evaluated side by side by the kernel: one per 32-bit lane of an AVX2 register.
pub(super) const LANES: usize = 8;

/// Every tree in the kernel's layout, in groups of [`LANES`] (built only when all of them fit:
/// at most 32 leaves, comparisons with a `<=` form).
#[derive(Debug)]
pub(super) struct Packed {
    pub(super) trees: usize,
    /// Per group, its branch slots `[start, end)`: as many as its largest tree has branches.
    pub(super) groups: Vec<(u32, u32)>,
    /// Per slot, `LANES` values: the feature each lane's branch reads, its threshold (`x <= t`),
    /// and the leaves it rules out when false. A tree with fewer branches than its group's
    /// largest fills the rest with branches that always hold (`x <= +inf`, nothing ruled out).
    pub(super) features: Vec<i32>,
    pub(super) thresholds: Vec<f32>,
    pub(super) masks: Vec<u32>,
    pub(super) max_feature: u32,
    /// The same branches tree by tree (for the row-block kernel): `[start, end)` into `nodes`.
    pub(super) tree_nodes: Vec<(u32, u32)>,
    pub(super) nodes: Vec<Node>,
    /// Per tree, the offset of its leaf positions in `leaf_ids` and `leaf_values`.
    pub(super) leaf_base: Vec<u32>,
    /// Leaf position -> the tree's own leaf index (as [`Tree::leaf`] numbers them).
    leaf_ids: Vec<u32>,
    /// Leaf position -> its first weight: all a single-target sum reads.
    pub(super) leaf_values: Vec<f32>,
}

#[derive(Debug)]
pub(super) struct Compiled {
    pub(super) ensemble: Ensemble,
    packed: Option<Packed>,
    /// The target every tree adds exactly one weight to, if any ([`aggregate::one_target`]):
    /// then a row is one float sum, which the kernels compute without listing the leaves.
    one_target: Option<u32>,
    /// Why the kernel does not apply (logged, shown in the model's status).
    pub(super) slow_reason: Option<String>,
}

impl Compiled {
    pub(super) fn new(ensemble: Ensemble) -> Self {
        let packed = if kernel_available() {
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

/// Rows per block of the row-block kernel.
#[cfg(target_arch = "x86_64")]
const ROWS: usize = super::simd::ROWS;
#[cfg(not(target_arch = "x86_64"))]
const ROWS: usize = 8;

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

/// A full block of NaN-free rows, feature-major into `cols` (`cols[f * ROWS + r]`); false (and
/// `cols` untouched) for a short block or one with a NaN, which the one-row paths take.
fn transpose<T>(block: &[(&[f32], T)], width: usize, cols: &mut Vec<f32>) -> bool {
    if block.len() != ROWS || block.iter().any(|(row, _)| row.iter().any(|x| x.is_nan())) {
        return false;
    }
    cols.resize(width * ROWS, 0.0);
    for (r, (row, _)) in block.iter().enumerate() {
        for (f, &x) in row.iter().enumerate() {
            cols[f * ROWS + r] = x;
        }
    }
    true
}

/// One branch in `x <= threshold` form, with the leaves to rule out when it is false.
#[derive(Debug, Clone, Copy)]
pub(super) struct Node {
    pub(super) threshold: f32,
    pub(super) feature: u32,
    pub(super) mask: u32,
}

impl Packed {
    fn build(ensemble: &Ensemble) -> Result<Self, String> {
        let mut trees = Vec::with_capacity(ensemble.trees.len());
        let mut packed = Packed {
            trees: ensemble.trees.len(),
            groups: Vec::new(),
            features: Vec::new(),
            thresholds: Vec::new(),
            masks: Vec::new(),
            max_feature: ensemble.max_feature,
            tree_nodes: Vec::with_capacity(ensemble.trees.len()),
            nodes: Vec::new(),
            leaf_base: Vec::with_capacity(ensemble.trees.len()),
            leaf_ids: Vec::new(),
            leaf_values: Vec::new(),
        };
        for (t, tree) in ensemble.trees.iter().enumerate() {
            // Leaves left to right, true child first; each branch's mask clears its true side.
            let (mut order, mut nodes) = (Vec::new(), Vec::new());
            collect(tree, tree.root, &mut order, &mut nodes)
                .map_err(|e| format!("tree {t}: {e}"))?;
            packed.leaf_base.push(packed.leaf_ids.len() as u32);
            packed.leaf_values.extend(order.iter().map(|&leaf| {
                let (start, _) = tree.leaves[leaf as usize];
                ensemble.weights[start as usize].value
            }));
            packed.leaf_ids.extend(order);
            let start = packed.nodes.len() as u32;
            packed.nodes.extend_from_slice(&nodes);
            packed.tree_nodes.push((start, packed.nodes.len() as u32));
            trees.push(nodes);
        }
        for group in trees.chunks(LANES) {
            let slots = group.iter().map(Vec::len).max().unwrap_or(0);
            let start = packed.features.len() / LANES;
            for k in 0..slots {
                for lane in 0..LANES {
                    let node = group
                        .get(lane)
                        .and_then(|nodes| nodes.get(k))
                        .copied()
                        .unwrap_or(Node {
                            threshold: f32::INFINITY,
                            feature: 0,
                            mask: u32::MAX,
                        });
                    packed.features.push(node.feature as i32);
                    packed.thresholds.push(node.threshold);
                    packed.masks.push(node.mask);
                }
            }
            packed.groups.push((start as u32, (start + slots) as u32));
        }
        packed.check();
        Ok(packed)
    }

    /// What the kernel's unchecked loads rely on.
    fn check(&self) {
        let slots = self.groups.last().map_or(0, |&(_, end)| end as usize);
        assert!(self.groups.len() == self.trees.div_ceil(LANES));
        assert!(
            self.groups
                .iter()
                .all(|&(s, e)| s <= e && e as usize <= slots)
        );
        assert!(
            [self.features.len(), self.thresholds.len(), self.masks.len()] == [slots * LANES; 3]
        );
        assert!(
            self.features
                .iter()
                .all(|&f| 0 <= f && f as u32 <= self.max_feature)
        );
    }
}

/// Visits `at` in order (true child first), appending its leaves to `order` and a node per
/// branch to `nodes`. Returns the bit mask of the leaves under `at`.
fn collect(
    tree: &Tree,
    at: Child,
    order: &mut Vec<u32>,
    nodes: &mut Vec<Node>,
) -> Result<u32, String> {
    match at {
        Child::Leaf(leaf) => {
            if order.len() == 32 {
                return Err("more than 32 leaves".to_owned());
            }
            order.push(leaf);
            Ok(1u32 << (order.len() - 1))
        }
        Child::Branch(b) => {
            let branch = &tree.branches[b as usize];
            let (threshold, swap) = as_leq(branch.mode, branch.threshold)
                .ok_or_else(|| format!("a {:?} branch has no `<=` form", branch.mode))?;
            let (left, right) = if swap {
                (branch.if_false, branch.if_true)
            } else {
                (branch.if_true, branch.if_false)
            };
            let at = nodes.len();
            nodes.push(Node {
                threshold,
                feature: branch.feature,
                mask: 0,
            });
            let left = collect(tree, left, order, nodes)?;
            let right = collect(tree, right, order, nodes)?;
            nodes[at].mask = !left;
            Ok(left | right)
        }
    }
}

/// `mode(x, t)` as `x <= t'` (or its negation, `swap`), for every `x` that is not NaN.
fn as_leq(mode: Mode, t: f32) -> Option<(f32, bool)> {
    Some(match mode {
        Mode::Leq => (t, false),
        Mode::Lt => (below(t), false),
        // x > t is !(x <= t); with a NaN threshold it never holds, so the swapped form must.
        Mode::Gt => (if t.is_nan() { f32::INFINITY } else { t }, true),
        Mode::Gte => (if t.is_nan() { f32::INFINITY } else { below(t) }, true),
        Mode::Eq | Mode::Neq => return None,
    })
}

/// The largest float below `t`, so that `x < t` is `x <= below(t)`; NaN (never true) when
/// nothing is below `t`.
fn below(t: f32) -> f32 {
    if t.is_nan() || t == f32::NEG_INFINITY {
        f32::NAN
    } else if t == 0.0 {
        -f32::from_bits(1)
    } else if t > 0.0 {
        f32::from_bits(t.to_bits() - 1)
    } else {
        f32::from_bits(t.to_bits() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::super::ensemble::{Aggregate, Branch, PostTransform, Weight};
    use super::*;

    const SPECIAL: [f32; 12] = [
        f32::NEG_INFINITY,
        -f32::MAX,
        -1.5,
        -f32::MIN_POSITIVE,
        -1e-45,
        -0.0,
        0.0,
        1e-45,
        f32::MIN_POSITIVE,
        2.25,
        f32::MAX,
        f32::INFINITY,
    ];

    #[test]
    fn every_mode_in_leq_form_agrees_with_the_comparison() {
        let thresholds = SPECIAL.iter().copied().chain([f32::NAN]);
        for t in thresholds {
            for mode in [Mode::Leq, Mode::Lt, Mode::Gte, Mode::Gt] {
                let (t2, swap) = as_leq(mode, t).unwrap();
                for x in SPECIAL {
                    let expected = mode.holds(x, t);
                    let got = (x <= t2) != swap;
                    assert_eq!(
                        got, expected,
                        "{mode:?} x={x:e} t={t:e} -> t'={t2:e} swap={swap}"
                    );
                }
            }
        }
    }

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
        let compiled = Compiled::new(ensemble);
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

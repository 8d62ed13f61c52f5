//! The trees laid out for the AVX2 kernels ([`super::simd`]): every branch evaluated without a
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
//! Written plainly in Rust, the branch-free select of a mask compiles back into a jump (LLVM's
//! x86 cmov conversion turns it into one inside the loop; measured slower than ONNX Runtime),
//! hence explicit vector instructions.

use super::ensemble::{Child, Ensemble, Mode, Tree};

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
    pub(super) leaf_ids: Vec<u32>,
    /// Leaf position -> its first weight: all a single-target sum reads.
    pub(super) leaf_values: Vec<f32>,
}

/// Rows per block of the row-block kernel: one per lane of two AVX2 registers (sixteen rows
/// share each branch's broadcast threshold and mask). Criterion, `engine-rul`, three runs of
/// each alternating: 256 rows a call 649 µs with eight rows a block, 528 µs with sixteen; 16
/// rows 41.4 -> 31.1 µs (BENCHMARKS.md, 2026-12-01).
pub(super) const ROWS: usize = 16;

/// One branch in `x <= threshold` form, with the leaves to rule out when it is false.
#[derive(Debug, Clone, Copy)]
pub(super) struct Node {
    pub(super) threshold: f32,
    pub(super) feature: u32,
    pub(super) mask: u32,
}

impl Packed {
    pub(super) fn build(ensemble: &Ensemble) -> Result<Self, String> {
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
}

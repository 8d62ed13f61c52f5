//! A tree-ensemble node of an ONNX graph, read into plain trees with ONNX Runtime's meaning.
//!
//! Every choice here follows ONNX Runtime's `TreeEnsembleCommon::Init` (the reference these
//! models are validated against): a tree starts at the first node listed with its tree id, a
//! node goes to its true child when its comparison holds or when the value is NaN and the node's
//! missing value tracks true, a leaf's weights keep their order in the attributes, weights on
//! a branch node are ignored. What ONNX Runtime would read differently from the specification
//! (an unknown mode is `BRANCH_NEQ` there) is refused here, so the model falls back to it.

use std::collections::HashMap;

use tract_onnx::pb;

use super::Unsupported;

/// How a branch compares the row's value `x` with its threshold `t`: true means "go to the true
/// child".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
}

impl Mode {
    fn parse(mode: &[u8]) -> Option<Option<Mode>> {
        Some(match mode {
            b"LEAF" => None,
            b"BRANCH_LEQ" => Some(Mode::Leq),
            b"BRANCH_LT" => Some(Mode::Lt),
            b"BRANCH_GTE" => Some(Mode::Gte),
            b"BRANCH_GT" => Some(Mode::Gt),
            b"BRANCH_EQ" => Some(Mode::Eq),
            b"BRANCH_NEQ" => Some(Mode::Neq),
            _ => return None,
        })
    }

    #[inline(always)]
    pub(super) fn holds(self, x: f32, t: f32) -> bool {
        match self {
            Mode::Leq => x <= t,
            Mode::Lt => x < t,
            Mode::Gte => x >= t,
            Mode::Gt => x > t,
            Mode::Eq => x == t,
            Mode::Neq => x != t,
        }
    }
}

/// Where a branch leads: another branch of the same tree, or one of its leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Child {
    Branch(u32),
    Leaf(u32),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Branch {
    pub feature: u32,
    pub threshold: f32,
    pub mode: Mode,
    /// A NaN value goes to the true child (otherwise it follows the comparison, which is false
    /// for NaN in every mode but `Neq`).
    pub missing_true: bool,
    pub if_true: Child,
    pub if_false: Child,
}

impl Branch {
    /// ONNX Runtime's decision, NaN included.
    #[inline(always)]
    pub(super) fn goes_true(&self, x: f32) -> bool {
        self.mode.holds(x, self.threshold) || (self.missing_true && x.is_nan())
    }
}

/// One tree: its branches (the root is `root`) and its leaves, each leaf an index into the
/// ensemble's weights.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Tree {
    pub root: Child,
    pub branches: Vec<Branch>,
    /// `[start, end)` into [`Ensemble::weights`] per leaf.
    pub leaves: Vec<(u32, u32)>,
}

impl Tree {
    /// The leaf a row reaches, by ONNX Runtime's rules.
    pub(super) fn leaf(&self, row: &[f32]) -> u32 {
        let mut at = self.root;
        loop {
            match at {
                Child::Leaf(leaf) => return leaf,
                Child::Branch(b) => {
                    let branch = &self.branches[b as usize];
                    at = if branch.goes_true(row[branch.feature as usize]) {
                        branch.if_true
                    } else {
                        branch.if_false
                    };
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Weight {
    /// The target (regressor) or class index (classifier) it adds to.
    pub target: u32,
    pub value: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PostTransform {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
    Probit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Regressor,
    Classifier {
        /// Two classes and every weight for the same one: ONNX Runtime derives the other.
        binary_case: bool,
        weights_all_positive: bool,
    },
}

/// A tree-ensemble op, ready to compile.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Ensemble {
    pub kind: Kind,
    pub trees: Vec<Tree>,
    pub weights: Vec<Weight>,
    /// Targets (regressor) or classes (classifier): the columns of the scores output.
    pub outputs: usize,
    pub aggregate: Aggregate,
    pub post_transform: PostTransform,
    pub base_values: Vec<f32>,
    /// The largest feature index a branch reads.
    pub max_feature: u32,
}

impl Ensemble {
    /// Reads a `TreeEnsembleRegressor` or `TreeEnsembleClassifier` (ai.onnx.ml 1-3) node.
    pub(super) fn from_node(node: &pb::NodeProto) -> Result<Self, Unsupported> {
        let attrs = Attributes::of(node)?;
        let classifier = match node.op_type.as_str() {
            "TreeEnsembleRegressor" => false,
            "TreeEnsembleClassifier" => true,
            other => return Err(Unsupported(format!("op {other} is not a tree ensemble"))),
        };
        for name in [
            "base_values_as_tensor",
            "nodes_values_as_tensor",
            "target_weights_as_tensor",
            "class_weights_as_tensor",
        ] {
            if attrs.has(name) {
                return Err(Unsupported(format!(
                    "attribute {name} (double-precision trees) is not supported"
                )));
            }
        }
        let (prefix, outputs) = if classifier {
            if attrs.has("classlabels_strings") {
                return Err(Unsupported("string class labels are not supported".into()));
            }
            ("class", attrs.ints("classlabels_int64s").len())
        } else {
            let n = attrs.int("n_targets").unwrap_or(0);
            ("target", usize::try_from(n).unwrap_or(0))
        };
        if outputs == 0 || (classifier && outputs < 2) {
            return Err(Unsupported(format!("{outputs} targets or classes")));
        }

        let tree_ids = attrs.ints("nodes_treeids");
        let node_ids = attrs.ints("nodes_nodeids");
        let features = attrs.ints("nodes_featureids");
        let values = attrs.floats("nodes_values");
        let modes = attrs.strings("nodes_modes");
        let true_ids = attrs.ints("nodes_truenodeids");
        let false_ids = attrs.ints("nodes_falsenodeids");
        let missing = attrs.ints("nodes_missing_value_tracks_true");
        let n = tree_ids.len();
        if [node_ids.len(), features.len(), values.len(), modes.len()]
            .iter()
            .chain([true_ids.len(), false_ids.len()].iter())
            .any(|&len| len != n)
            || n == 0
        {
            return Err(Unsupported("node attributes of different lengths".into()));
        }

        // Trees in the order they are listed; each one's nodes must be contiguous (ONNX Runtime
        // would start a new tree at the second run of an id).
        let mut spans: Vec<(i64, usize, usize)> = Vec::new();
        for (i, &tree) in tree_ids.iter().enumerate() {
            match spans.last_mut() {
                Some((id, _, end)) if *id == tree => *end = i + 1,
                _ => {
                    if spans.iter().any(|(id, _, _)| *id == tree) {
                        return Err(Unsupported(format!(
                            "the nodes of tree {tree} are not contiguous"
                        )));
                    }
                    spans.push((tree, i, i + 1));
                }
            }
        }

        // Each leaf's weights, in attribute order.
        let w_trees = attrs.ints(&format!("{prefix}_treeids"));
        let w_nodes = attrs.ints(&format!("{prefix}_nodeids"));
        let w_ids = attrs.ints(&format!("{prefix}_ids"));
        let w_values = attrs.floats(&format!("{prefix}_weights"));
        if w_nodes.len() != w_trees.len()
            || w_ids.len() != w_trees.len()
            || w_values.len() != w_trees.len()
        {
            return Err(Unsupported("weight attributes of different lengths".into()));
        }
        let mut leaf_weights: HashMap<(i64, i64), Vec<Weight>> = HashMap::new();
        for i in 0..w_trees.len() {
            let target = u32::try_from(w_ids[i])
                .ok()
                .filter(|&t| (t as usize) < outputs)
                .ok_or_else(|| {
                    Unsupported(format!("weight for target {} of {outputs}", w_ids[i]))
                })?;
            leaf_weights
                .entry((w_trees[i], w_nodes[i]))
                .or_default()
                .push(Weight {
                    target,
                    value: w_values[i],
                });
        }

        let mut trees = Vec::with_capacity(spans.len());
        let mut weights = Vec::new();
        let mut max_feature = 0u32;
        for &(tree_id, start, end) in &spans {
            // Node id -> position in this tree's span.
            let position: HashMap<i64, usize> =
                (start..end).map(|i| (node_ids[i], i - start)).collect();
            if position.len() != end - start {
                return Err(Unsupported(format!("tree {tree_id} repeats a node id")));
            }
            let parsed: Vec<Option<Mode>> = (start..end)
                .map(|i| {
                    Mode::parse(&modes[i]).ok_or_else(|| {
                        Unsupported(format!("node mode {}", String::from_utf8_lossy(&modes[i])))
                    })
                })
                .collect::<Result<_, _>>()?;
            // Branches and leaves numbered in listing order.
            let mut index = vec![Child::Leaf(0); end - start];
            let (mut branches, mut leaves) = (0u32, 0u32);
            for (k, mode) in parsed.iter().enumerate() {
                index[k] = match mode {
                    Some(_) => {
                        branches += 1;
                        Child::Branch(branches - 1)
                    }
                    None => {
                        leaves += 1;
                        Child::Leaf(leaves - 1)
                    }
                };
            }
            let child = |id: i64| -> Result<Child, Unsupported> {
                position
                    .get(&id)
                    .map(|&k| index[k])
                    .ok_or_else(|| Unsupported(format!("tree {tree_id} has no node {id}")))
            };
            let mut tree = Tree {
                root: index[0],
                branches: Vec::with_capacity(branches as usize),
                leaves: Vec::with_capacity(leaves as usize),
            };
            for (k, mode) in parsed.iter().enumerate() {
                let i = start + k;
                match mode {
                    Some(mode) => {
                        let feature = u32::try_from(features[i])
                            .map_err(|_| Unsupported(format!("feature index {}", features[i])))?;
                        max_feature = max_feature.max(feature);
                        tree.branches.push(Branch {
                            feature,
                            threshold: values[i],
                            mode: *mode,
                            missing_true: missing.get(i) == Some(&1),
                            if_true: child(true_ids[i])?,
                            if_false: child(false_ids[i])?,
                        });
                    }
                    None => {
                        let own =
                            leaf_weights
                                .remove(&(tree_id, node_ids[i]))
                                .ok_or_else(|| {
                                    Unsupported(format!(
                                        "leaf {} of tree {tree_id} has no weight",
                                        node_ids[i]
                                    ))
                                })?;
                        let first = weights.len() as u32;
                        weights.extend(own);
                        tree.leaves.push((first, weights.len() as u32));
                    }
                }
            }
            check_acyclic(&tree, tree_id)?;
            trees.push(tree);
        }

        let aggregate = match attrs.string("aggregate_function").unwrap_or(b"SUM") {
            b"SUM" => Aggregate::Sum,
            b"AVERAGE" => Aggregate::Average,
            b"MIN" => Aggregate::Min,
            b"MAX" => Aggregate::Max,
            other => {
                return Err(Unsupported(format!(
                    "aggregate function {}",
                    String::from_utf8_lossy(other)
                )));
            }
        };
        let post_transform = match attrs.string("post_transform").unwrap_or(b"NONE") {
            b"NONE" => PostTransform::None,
            b"LOGISTIC" => PostTransform::Logistic,
            b"SOFTMAX" => PostTransform::Softmax,
            b"SOFTMAX_ZERO" => PostTransform::SoftmaxZero,
            b"PROBIT" => PostTransform::Probit,
            other => {
                return Err(Unsupported(format!(
                    "post transform {}",
                    String::from_utf8_lossy(other)
                )));
            }
        };
        if classifier && outputs == 2 && post_transform == PostTransform::Probit {
            return Err(Unsupported(
                "a binary classifier with PROBIT: ONNX Runtime leaves one column unwritten".into(),
            ));
        }
        let kind = if classifier {
            let mut classes: Vec<u32> = weights.iter().map(|w| w.target).collect();
            classes.sort_unstable();
            classes.dedup();
            Kind::Classifier {
                binary_case: outputs == 2 && classes.len() == 1,
                // Over the attribute, as ONNX Runtime counts it (weights on branches included).
                // ONNX Runtime tests `w < 0`: a NaN weight counts as positive.
                weights_all_positive: !w_values.iter().any(|&v| v < 0.0),
            }
        } else {
            Kind::Regressor
        };
        Ok(Self {
            kind,
            trees,
            weights,
            outputs,
            aggregate,
            post_transform,
            base_values: attrs.floats("base_values").to_vec(),
            max_feature,
        })
    }
}

impl Ensemble {
    /// Reads an opset-5 `TreeEnsemble` node the way ONNX Runtime does: it converts the node to
    /// the opset-3 form first, so trees follow `tree_roots`, each leaf is one weight, a
    /// `BRANCH_MEMBER` set becomes a chain of `BRANCH_EQ` branches (ONNX Runtime unrolls sets of
    /// fewer than 31 values between 0 and 30 so; larger sets are refused here), and
    /// `post_transform` codes 1 and 2 mean LOGISTIC and SOFTMAX (ONNX Runtime's own numbering;
    /// the specification's is the other way round).
    pub(super) fn from_v5(node: &pb::NodeProto) -> Result<Self, Unsupported> {
        let attrs = Attributes::of(node)?;
        let outputs = usize::try_from(attrs.int("n_targets").unwrap_or(0)).unwrap_or(0);
        if outputs == 0 {
            return Err(Unsupported("0 targets".into()));
        }
        let splits = attrs.float_tensor("nodes_splits")?;
        let leaf_weights = attrs.float_tensor("leaf_weights")?;
        let members = match attrs.has("membership_values") {
            true => attrs.float_tensor("membership_values")?,
            false => Vec::new(),
        };
        let modes = attrs.byte_tensor("nodes_modes")?;
        let features = attrs.ints("nodes_featureids");
        let true_ids = attrs.ints("nodes_truenodeids");
        let false_ids = attrs.ints("nodes_falsenodeids");
        let true_leaf = attrs.ints("nodes_trueleafs");
        let false_leaf = attrs.ints("nodes_falseleafs");
        let missing = attrs.ints("nodes_missing_value_tracks_true");
        let leaf_targets = attrs.ints("leaf_targetids");
        let n = features.len();
        if [
            splits.len(),
            modes.len(),
            true_ids.len(),
            false_ids.len(),
            true_leaf.len(),
            false_leaf.len(),
        ]
        .iter()
        .any(|&len| len != n)
            || leaf_targets.len() != leaf_weights.len()
        {
            return Err(Unsupported(
                "node or leaf attributes of different lengths".into(),
            ));
        }
        // Each BRANCH_MEMBER node's set: the next NaN-terminated run of membership_values.
        let mut sets = vec![Vec::new(); n];
        let mut at = 0;
        for (i, &mode) in modes.iter().enumerate() {
            if mode == 6 {
                while at < members.len() && !members[at].is_nan() {
                    sets[i].push(members[at]);
                    at += 1;
                }
                at += 1;
            }
        }
        let leaf =
            |i: i64, weights: &mut Vec<Weight>, tree: &mut Tree| -> Result<Child, Unsupported> {
                let i = usize::try_from(i).ok().filter(|&i| i < leaf_weights.len());
                let i = i.ok_or_else(|| Unsupported("a leaf index out of range".into()))?;
                let target = u32::try_from(leaf_targets[i])
                    .ok()
                    .filter(|&t| (t as usize) < outputs)
                    .ok_or_else(|| Unsupported(format!("leaf target {}", leaf_targets[i])))?;
                weights.push(Weight {
                    target,
                    value: leaf_weights[i],
                });
                tree.leaves
                    .push((weights.len() as u32 - 1, weights.len() as u32));
                Ok(Child::Leaf(tree.leaves.len() as u32 - 1))
            };

        let mut trees = Vec::new();
        let mut weights = Vec::new();
        let mut max_feature = 0u32;
        for &root in attrs.ints("tree_roots") {
            let r = usize::try_from(root).ok().filter(|&r| r < n);
            let r = r.ok_or_else(|| Unsupported(format!("tree root {root}")))?;
            let mut tree = Tree {
                root: Child::Leaf(0),
                branches: Vec::new(),
                leaves: Vec::new(),
            };
            if true_ids[r] == false_ids[r] && true_leaf[r] != 0 && false_leaf[r] != 0 {
                // A one-leaf tree; ONNX Runtime reads its weight at the root's own index.
                tree.root = leaf(root, &mut weights, &mut tree)?;
                trees.push(tree);
                continue;
            }
            // Depth first; each entry fills the child slot it was reached from.
            enum Slot {
                Root,
                /// The true child of a chain of branches `[start, end)` (one, or a member set's).
                True(usize, usize),
                False(usize),
            }
            let mut stack = vec![(r, Slot::Root)];
            let mut visited = 0usize;
            while let Some((i, slot)) = stack.pop() {
                visited += 1;
                if visited > n {
                    return Err(Unsupported("a tree has a cycle".into()));
                }
                let feature = u32::try_from(features[i])
                    .map_err(|_| Unsupported(format!("feature index {}", features[i])))?;
                max_feature = max_feature.max(feature);
                let missing_true = missing.get(i) == Some(&1);
                let (mode, values) = match modes[i] {
                    0 => (Mode::Leq, vec![splits[i]]),
                    1 => (Mode::Lt, vec![splits[i]]),
                    2 => (Mode::Gte, vec![splits[i]]),
                    3 => (Mode::Gt, vec![splits[i]]),
                    4 => (Mode::Eq, vec![splits[i]]),
                    5 => (Mode::Neq, vec![splits[i]]),
                    6 if !sets[i].is_empty()
                        && sets[i].len() < 31
                        && sets[i].iter().all(|&v| (0.0..=30.0).contains(&v)) =>
                    {
                        (Mode::Eq, sets[i].clone())
                    }
                    6 => {
                        return Err(Unsupported(
                            "a BRANCH_MEMBER set outside 0..=30 or of 31+ values".into(),
                        ));
                    }
                    other => return Err(Unsupported(format!("node mode code {other}"))),
                };
                // A member set: x == v1 ? T : x == v2 ? T : ... : F, each with the node's NaN rule.
                let first = tree.branches.len() as u32;
                for (k, &value) in values.iter().enumerate() {
                    let last = k + 1 == values.len();
                    tree.branches.push(Branch {
                        feature,
                        threshold: value,
                        mode,
                        missing_true,
                        if_true: Child::Leaf(u32::MAX),
                        if_false: if last {
                            Child::Leaf(u32::MAX)
                        } else {
                            Child::Branch(first + k as u32 + 1)
                        },
                    });
                }
                let this = Child::Branch(first);
                match slot {
                    Slot::Root => tree.root = this,
                    Slot::True(start, end) => {
                        for b in &mut tree.branches[start..end] {
                            b.if_true = this;
                        }
                    }
                    Slot::False(b) => tree.branches[b].if_false = this,
                }
                let chain: Vec<usize> = (first as usize..tree.branches.len()).collect();
                let last = *chain.last().expect("one branch at least");
                // Every branch of the chain shares the true child; the last one has the false.
                let true_child = if true_leaf[i] != 0 {
                    Some(leaf(true_ids[i], &mut weights, &mut tree)?)
                } else {
                    None
                };
                for &b in &chain {
                    if let Some(child) = true_child {
                        tree.branches[b].if_true = child;
                    }
                }
                if false_leaf[i] != 0 {
                    tree.branches[last].if_false = leaf(false_ids[i], &mut weights, &mut tree)?;
                } else {
                    let f = usize::try_from(false_ids[i]).ok().filter(|&f| f < n);
                    stack.push((
                        f.ok_or_else(|| Unsupported("a node index out of range".into()))?,
                        Slot::False(last),
                    ));
                }
                if true_child.is_none() {
                    // One subtree, shared by every branch of a member chain (as ONNX Runtime
                    // builds it).
                    let t = usize::try_from(true_ids[i]).ok().filter(|&t| t < n);
                    let t = t.ok_or_else(|| Unsupported("a node index out of range".into()))?;
                    stack.push((t, Slot::True(first as usize, last + 1)));
                }
            }
            check_acyclic(&tree, trees.len() as i64)?;
            trees.push(tree);
        }
        if trees.is_empty() {
            return Err(Unsupported("no trees".into()));
        }
        let aggregate = match attrs.int("aggregate_function").unwrap_or(1) {
            0 => Aggregate::Average,
            1 => Aggregate::Sum,
            2 => Aggregate::Min,
            3 => Aggregate::Max,
            other => return Err(Unsupported(format!("aggregate function code {other}"))),
        };
        let post_transform = match attrs.int("post_transform").unwrap_or(0) {
            0 => PostTransform::None,
            1 => PostTransform::Logistic,
            2 => PostTransform::Softmax,
            3 => PostTransform::SoftmaxZero,
            4 => PostTransform::Probit,
            other => return Err(Unsupported(format!("post transform code {other}"))),
        };
        Ok(Self {
            kind: Kind::Regressor,
            trees,
            weights,
            outputs,
            aggregate,
            post_transform,
            base_values: Vec::new(),
            max_feature,
        })
    }
}

/// Every path from the root must end at a leaf: a cycle would never.
fn check_acyclic(tree: &Tree, tree_id: i64) -> Result<(), Unsupported> {
    let mut depth = vec![None::<u32>; tree.branches.len()];
    let mut stack = vec![(tree.root, 0u32)];
    while let Some((at, d)) = stack.pop() {
        if let Child::Branch(b) = at {
            if d as usize > tree.branches.len() {
                return Err(Unsupported(format!("tree {tree_id} has a cycle")));
            }
            if depth[b as usize].is_some_and(|seen| seen >= d) {
                continue;
            }
            depth[b as usize] = Some(d);
            let branch = &tree.branches[b as usize];
            stack.push((branch.if_true, d + 1));
            stack.push((branch.if_false, d + 1));
        }
    }
    Ok(())
}

/// A node's attributes by name.
struct Attributes<'a>(HashMap<&'a str, &'a pb::AttributeProto>);

impl<'a> Attributes<'a> {
    fn of(node: &'a pb::NodeProto) -> Result<Self, Unsupported> {
        let mut map = HashMap::new();
        for attr in &node.attribute {
            if !attr.ref_attr_name.is_empty() {
                return Err(Unsupported(format!(
                    "attribute {} refers to a function's",
                    attr.name
                )));
            }
            map.insert(attr.name.as_str(), attr);
        }
        Ok(Self(map))
    }

    fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    fn ints(&self, name: &str) -> &'a [i64] {
        self.0.get(name).map_or(&[], |a| a.ints.as_slice())
    }

    fn floats(&self, name: &str) -> &'a [f32] {
        self.0.get(name).map_or(&[], |a| a.floats.as_slice())
    }

    fn strings(&self, name: &str) -> &'a [Vec<u8>] {
        self.0.get(name).map_or(&[], |a| a.strings.as_slice())
    }

    fn int(&self, name: &str) -> Option<i64> {
        self.0.get(name).map(|a| a.i)
    }

    fn string(&self, name: &str) -> Option<&'a [u8]> {
        self.0.get(name).map(|a| a.s.as_slice())
    }

    fn tensor(&self, name: &str) -> Result<&'a pb::TensorProto, Unsupported> {
        let t = self.0.get(name).and_then(|a| a.t.as_ref());
        let t = t.ok_or_else(|| Unsupported(format!("no tensor attribute {name}")))?;
        if t.data_location == Some(1) {
            return Err(Unsupported(format!("{name} is stored outside the model")));
        }
        Ok(t)
    }

    /// A float tensor attribute (double trees are refused: the service scores float rows).
    fn float_tensor(&self, name: &str) -> Result<Vec<f32>, Unsupported> {
        let t = self.tensor(name)?;
        if t.data_type != pb::tensor_proto::DataType::Float as i32 {
            return Err(Unsupported(format!(
                "{name} is not float (double-precision trees)"
            )));
        }
        Ok(if t.raw_data.is_empty() {
            t.float_data.clone()
        } else {
            t.raw_data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        })
    }

    /// A uint8 tensor attribute (the opset-5 node modes).
    fn byte_tensor(&self, name: &str) -> Result<Vec<u8>, Unsupported> {
        let t = self.tensor(name)?;
        if t.data_type != pb::tensor_proto::DataType::Uint8 as i32 {
            return Err(Unsupported(format!("{name} is not uint8")));
        }
        Ok(if t.raw_data.is_empty() {
            t.int32_data.iter().map(|&v| v as u8).collect()
        } else {
            t.raw_data.clone()
        })
    }
}

//! From the leaves a row reached to the op's output row, the way ONNX Runtime does it.
//!
//! ONNX Runtime (with one intra-op thread, as the service runs it) adds the trees' weights in
//! float, tree after tree in the order they are listed, then adds base values and applies the
//! post transform in float, with its own formulas for the logistic, softmax and probit. Doing
//! the same operations in the same order gives the same bits, which is the parity this backend
//! keeps: its outputs are ONNX Runtime's, not merely close to them. The odd corners (a
//! single-target regressor ignores every post transform but PROBIT; a binary classifier reports
//! a class no leaf scored as 0 whatever its base value) are ONNX Runtime's and are kept on
//! purpose; where ONNX Runtime's output is undefined (a binary classifier's PROBIT leaves a
//! column unwritten) the model is refused and stays with ONNX Runtime.

use super::ensemble::{Aggregate, Ensemble, Kind, PostTransform, Weight};

/// One score per output column while the trees are summed; `has` says whether any tree wrote it.
#[derive(Debug, Clone, Copy, Default)]
struct Score {
    value: f32,
    has: bool,
}

/// Per-row working memory, reused from row to row.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    scores: Vec<Score>,
    values: Vec<f32>,
}

/// Adds one leaf's weights, in order, to the row's scores (`Sum`, `Average` and every
/// classifier), or keeps their minimum or maximum.
#[inline]
fn process(aggregate: Aggregate, scores: &mut [Score], leaf: &[Weight]) {
    for w in leaf {
        let s = &mut scores[w.target as usize];
        match aggregate {
            Aggregate::Sum | Aggregate::Average => s.value += w.value,
            Aggregate::Min => {
                if !s.has || w.value < s.value {
                    s.value = w.value;
                }
            }
            Aggregate::Max => {
                if !s.has || w.value > s.value {
                    s.value = w.value;
                }
            }
        }
        s.has = true;
    }
}

/// The output row of one input row, given the leaf each tree reached (in tree order).
/// `out` receives `ensemble.outputs` values.
pub(super) fn finish_row(
    ensemble: &Ensemble,
    leaves: &[u32],
    scratch: &mut Scratch,
    out: &mut [f32],
) {
    let n = ensemble.outputs;
    let Scratch { scores, values } = scratch;
    scores.clear();
    scores.resize(n, Score::default());
    let aggregate = match ensemble.kind {
        Kind::Regressor => ensemble.aggregate,
        // ONNX Runtime's classifier always sums, whatever the attribute says.
        Kind::Classifier { .. } => Aggregate::Sum,
    };
    for (tree, &leaf) in ensemble.trees.iter().zip(leaves) {
        let (start, end) = tree.leaves[leaf as usize];
        let weights = &ensemble.weights[start as usize..end as usize];
        if n == 1 {
            // A single target reads only the leaf's first weight.
            process(aggregate, scores, &weights[..1]);
        } else {
            process(aggregate, scores, weights);
        }
    }
    finish_scores(ensemble, scores, values, out);
}

/// The output row when every tree added exactly one weight, to `target`, and `sum` is their
/// float sum in tree order (what the kernels compute for such models).
pub(super) fn finish_one_target(
    ensemble: &Ensemble,
    target: u32,
    sum: f32,
    scratch: &mut Scratch,
    out: &mut [f32],
) {
    let Scratch { scores, values } = scratch;
    scores.clear();
    scores.resize(ensemble.outputs, Score::default());
    scores[target as usize] = Score {
        value: sum,
        has: true,
    };
    finish_scores(ensemble, scores, values, out);
}

/// Which target every tree adds exactly one weight to, when there is one: then a row's scores
/// are one float sum ([`finish_one_target`]). Not for MIN and MAX, which are not sums.
pub(super) fn one_target(ensemble: &Ensemble) -> Option<u32> {
    let sums = match ensemble.kind {
        Kind::Regressor => matches!(ensemble.aggregate, Aggregate::Sum | Aggregate::Average),
        Kind::Classifier { .. } => true,
    };
    if !sums {
        return None;
    }
    if ensemble.outputs == 1 {
        // A single target reads each leaf's first weight only.
        return Some(0);
    }
    let target = ensemble.weights.first()?.target;
    let one_each = ensemble.trees.iter().all(|tree| {
        tree.leaves.iter().all(|&(start, end)| {
            end == start + 1 && ensemble.weights[start as usize].target == target
        })
    });
    one_each.then_some(target)
}

fn finish_scores(
    ensemble: &Ensemble,
    scores: &mut [Score],
    values: &mut Vec<f32>,
    out: &mut [f32],
) {
    let n = ensemble.outputs;
    match ensemble.kind {
        Kind::Regressor if n == 1 => {
            out[0] = finish_single(ensemble, scores[0].value, scores[0].has);
        }
        Kind::Regressor => finish_targets(ensemble, scores, values, out),
        Kind::Classifier {
            binary_case,
            weights_all_positive,
        } => finish_classes(
            ensemble,
            binary_case,
            weights_all_positive,
            scores,
            values,
            out,
        ),
    }
}

/// A single-target regressor's value from its summed (or min/max) score.
#[inline]
pub(super) fn finish_single(ensemble: &Ensemble, value: f32, has: bool) -> f32 {
    let origin = match ensemble.base_values.as_slice() {
        [only] => *only,
        _ => 0.0,
    };
    let value = match ensemble.aggregate {
        Aggregate::Sum => value + origin,
        Aggregate::Average => value / ensemble.trees.len() as f32 + origin,
        Aggregate::Min | Aggregate::Max => {
            if has {
                value + origin
            } else {
                origin
            }
        }
    };
    match ensemble.post_transform {
        PostTransform::Probit => probit(value),
        _ => value,
    }
}

fn finish_targets(
    ensemble: &Ensemble,
    scores: &mut [Score],
    scratch: &mut Vec<f32>,
    out: &mut [f32],
) {
    let base = (ensemble.base_values.len() == scores.len()).then_some(&ensemble.base_values);
    let n_trees = ensemble.trees.len() as f32;
    scratch.clear();
    for (j, s) in scores.iter().enumerate() {
        let b = base.map(|b| b[j]);
        scratch.push(match ensemble.aggregate {
            Aggregate::Sum => b.map_or(s.value, |b| s.value + b),
            Aggregate::Average => b.map_or(s.value / n_trees, |b| s.value / n_trees + b),
            Aggregate::Min | Aggregate::Max => b.unwrap_or(0.0) + if s.has { s.value } else { 0.0 },
        });
    }
    write_scores(ensemble.post_transform, scratch, None, out);
}

fn finish_classes(
    ensemble: &Ensemble,
    binary_case: bool,
    weights_all_positive: bool,
    scores: &mut [Score],
    scratch: &mut Vec<f32>,
    out: &mut [f32],
) {
    let base = &ensemble.base_values;
    scratch.clear();
    if scores.len() > 2 {
        for (k, b) in base.iter().enumerate().take(scores.len()) {
            let s = &mut scores[k];
            s.value = if s.has { s.value + b } else { *b };
            s.has = true;
        }
        scratch.extend(scores.iter().map(|s| s.value));
        write_scores(ensemble.post_transform, scratch, None, out);
        return;
    }
    // Two classes.
    let mut second = None;
    let mut keep_both = true;
    match base.len() {
        2 => {
            if scores[1].has {
                // ONNX Runtime: base_values[0] is not used here.
                scores[1].value = base[1] + scores[0].value;
                scores[0].value = -scores[1].value;
            } else {
                scores[1].value += base[1];
                scores[0].value += base[0];
            }
        }
        1 => {
            scores[0].value += base[0];
            keep_both = scores[1].has;
        }
        0 => {
            second = Some(3);
            keep_both = scores[1].has;
        }
        // More base values than classes: ONNX Runtime adds none and keeps both columns.
        _ => {}
    }
    if binary_case {
        let positive = if keep_both && scores[1].has {
            scores[1].value
        } else if scores[0].has {
            scores[0].value
        } else {
            0.0
        };
        second = Some(match (weights_all_positive, positive) {
            (true, p) if p > 0.5 => 0,
            (true, _) => 1,
            (false, p) if p > 0.0 => 2,
            (false, _) => 3,
        });
    }
    if keep_both {
        // ONNX Runtime 1.32 writes a class no leaf scored as 0, base value or not.
        scratch.extend(
            scores[..2]
                .iter()
                .map(|s| if s.has { s.value } else { 0.0 }),
        );
    } else {
        scratch.push(scores[0].value);
    }
    write_scores(ensemble.post_transform, scratch, second, out);
}

/// ONNX Runtime's `write_scores`: the post transform, and the second column of a binary
/// classifier that scored only one.
fn write_scores(post: PostTransform, scores: &mut [f32], second: Option<u8>, out: &mut [f32]) {
    if scores.len() >= 2 {
        match post {
            PostTransform::Probit => scores.iter_mut().for_each(|v| *v = probit(*v)),
            PostTransform::Logistic => scores.iter_mut().for_each(|v| *v = logistic(*v)),
            PostTransform::Softmax => softmax(scores),
            PostTransform::SoftmaxZero => softmax_zero(scores),
            PostTransform::None => {}
        }
        out.copy_from_slice(scores);
        return;
    }
    let s = scores[0];
    match second {
        // All weights positive: a probability; ONNX Runtime 1.26+ applies the logistic first.
        Some(0 | 1) => {
            let p = if post == PostTransform::Logistic {
                logistic(s)
            } else {
                s
            };
            out[0] = 1.0 - p;
            out[1] = p;
        }
        Some(_) if post == PostTransform::Logistic => {
            out[0] = logistic(-s);
            out[1] = logistic(s);
        }
        Some(_) => {
            out[0] = -s;
            out[1] = s;
        }
        None => {
            out[0] = s;
            out[1] = f32::NAN;
        }
    }
}

/// ONNX Runtime's `ComputeLogistic`.
#[inline]
pub(super) fn logistic(v: f32) -> f32 {
    let e = 1.0 / (1.0 + (-v.abs()).exp());
    if v < 0.0 { 1.0 - e } else { e }
}

/// ONNX Runtime's `ComputeProbit`, with its approximate inverse error function.
pub(super) fn probit(v: f32) -> f32 {
    std::f32::consts::SQRT_2 * erf_inv(2.0 * v - 1.0)
}

fn erf_inv(x: f32) -> f32 {
    let sign = if x < 0.0 { -1.0f32 } else { 1.0 };
    let x = (1.0 - x) * (1.0 + x);
    let log = x.ln();
    let v = 2.0 / (std::f32::consts::PI * 0.147) + 0.5 * log;
    let v2 = 1.0 / 0.147f32 * log;
    let v3 = -v + (v * v - v2).sqrt();
    sign * v3.sqrt()
}

fn softmax(values: &mut [f32]) {
    let max = values
        .iter()
        .fold(-f32::MAX, |m, &v| if v > m { v } else { m });
    let mut sum = 0.0f32;
    for v in values.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    values.iter_mut().for_each(|v| *v /= sum);
}

/// Softmax that leaves (near-)zero scores at zero, as ONNX Runtime's `ComputeSoftmaxZero`.
fn softmax_zero(values: &mut [f32]) {
    let max = values
        .iter()
        .fold(-f32::MAX, |m, &v| if v > m { v } else { m });
    let exp_neg_max = (-max).exp();
    let mut sum = 0.0f32;
    for v in values.iter_mut() {
        if *v > 0.000_000_1 || *v < -0.000_000_1 {
            *v = (*v - max).exp();
            sum += *v;
        } else {
            *v *= exp_neg_max;
        }
    }
    values.iter_mut().for_each(|v| *v /= sum);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logistic_is_symmetric_and_bounded() {
        for v in [-30.0f32, -2.5, -0.0, 0.0, 0.7, 12.0] {
            let p = logistic(v);
            assert!((0.0..=1.0).contains(&p));
            assert_eq!(logistic(-v), 1.0 - p, "{v}");
        }
        assert_eq!(logistic(0.0), 0.5);
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let mut v = [1.0f32, 3.0, -2.0];
        softmax(&mut v);
        assert!((v.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(v[1] > v[0] && v[0] > v[2]);
    }

    #[test]
    fn probit_inverts_the_normal_cdf_roughly() {
        // The approximation ONNX Runtime uses is good to about 2e-3.
        assert!(probit(0.5).abs() < 1e-6);
        assert!((probit(0.975) - 1.959_964).abs() < 5e-3);
        assert!((probit(0.025) + 1.959_964).abs() < 5e-3);
    }
}

//! Which episodes to review first when nothing is reviewed yet: the ones that cover the
//! most of what the recordings hold.
//!
//! A model learns an outcome class only from a reviewed episode of that class. Drawn at
//! random, five reviewed episodes of a task whose failures are 15 % each miss a given failure
//! class 44 % of the time (0.85^5), whatever the learner. Ordered by coverage — each next
//! episode the one least like any already chosen (greedy farthest-point, the k-center
//! heuristic), over the episode's outcome figures without any label — the first few reviews
//! reach every kind of episode the set holds, failures included.

use super::features::{self, RULE_FEATURES, Series};
use crate::segment::Segmentation;

/// How many figures a descriptor has (the outcome figures but the rules' verdict).
pub const DESCRIPTOR_LEN: usize = features::OUTCOME_FEATURES.len() - RULE_FEATURES;

/// An episode's description for coverage: its outcome figures without the rules' verdict
/// (zeros for an episode without a gripper).
pub fn descriptor(s: &Series, rules: &Segmentation) -> Vec<f64> {
    let n = DESCRIPTOR_LEN;
    features::outcome_features(s, rules)
        .map(|mut f| {
            f.truncate(n);
            f
        })
        .unwrap_or_else(|| vec![0.0; n])
}

/// Each column centred on its median and divided by its median absolute deviation (a
/// column that never varies stays 0), so no figure's unit decides the distances and one
/// outlier does not squash the rest.
pub fn standardize(d: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let cols = d.first().map_or(0, Vec::len);
    let mut out: Vec<Vec<f64>> = d.iter().map(|r| vec![0.0; r.len()]).collect();
    for c in 0..cols {
        let mut v: Vec<f64> = d.iter().map(|r| r[c]).filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            continue;
        }
        v.sort_by(f64::total_cmp);
        let med = v[v.len() / 2];
        let mut dev: Vec<f64> = v.iter().map(|x| (x - med).abs()).collect();
        dev.sort_by(f64::total_cmp);
        let mad = dev[dev.len() / 2];
        // a column where most episodes agree exactly (MAD 0) still separates the others:
        // scale by the mean deviation then
        let scale = if mad > 1e-12 {
            mad
        } else {
            dev.iter().sum::<f64>() / dev.len() as f64
        };
        if scale <= 1e-12 {
            continue;
        }
        for (o, r) in out.iter_mut().zip(d) {
            let x = if r[c].is_finite() { r[c] } else { med };
            o[c] = (x - med) / scale;
        }
    }
    out
}

/// All episodes in coverage order: `first`, then repeatedly the one farthest from every
/// episode already chosen (ties: the lower index). Deterministic.
pub fn coverage_order(descriptors: &[Vec<f64>], first: usize) -> Vec<usize> {
    if descriptors.is_empty() {
        return Vec::new();
    }
    let first = first.min(descriptors.len() - 1);
    let mut o = vec![first];
    o.extend(coverage_after(descriptors, &[first]));
    o
}

/// The episodes not in `chosen` (already reviewed), each next the one farthest from every
/// episode chosen before it; with nothing chosen, the first is the one nearest the middle
/// of them all (the most typical episode). Deterministic.
pub fn coverage_after(descriptors: &[Vec<f64>], chosen: &[usize]) -> Vec<usize> {
    let z = standardize(descriptors);
    let n = z.len();
    if n == 0 {
        return Vec::new();
    }
    let dist = |a: &[f64], b: &[f64]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y) * (x - y))
            .sum::<f64>()
            .sqrt()
    };
    let mut taken = vec![false; n];
    let mut order = Vec::new();
    let mut near = vec![f64::INFINITY; n];
    for &c in chosen.iter().filter(|&&c| c < n) {
        taken[c] = true;
        for (i, r) in z.iter().enumerate() {
            near[i] = near[i].min(dist(r, &z[c]));
        }
    }
    if !taken.iter().any(|t| *t) {
        // standardized around the medians: the typical episode is the one nearest 0
        let zero = vec![0.0; z[0].len()];
        let first = (0..n)
            .min_by(|&a, &b| dist(&z[a], &zero).total_cmp(&dist(&z[b], &zero)))
            .expect("n > 0");
        taken[first] = true;
        order.push(first);
        for (i, r) in z.iter().enumerate() {
            near[i] = near[i].min(dist(r, &z[first]));
        }
    }
    while taken.iter().any(|t| !*t) {
        let (next, _) = near.iter().enumerate().filter(|(i, _)| !taken[*i]).fold(
            (usize::MAX, f64::NEG_INFINITY),
            |best, (i, d)| {
                if *d > best.1 { (i, *d) } else { best }
            },
        );
        taken[next] = true;
        order.push(next);
        for (i, r) in z.iter().enumerate() {
            near[i] = near[i].min(dist(r, &z[next]));
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_reaches_every_cluster_before_repeating_one() {
        // 20 of a common kind, 3 each of three rare ones, in figures of different units
        let mut d = Vec::new();
        for i in 0..20 {
            d.push(vec![5.0 + 0.01 * i as f64, 0.3, 0.0]);
        }
        for i in 0..3 {
            d.push(vec![0.08, 0.0 + 0.001 * i as f64, 0.0]); // nothing held
            d.push(vec![5.0, 0.9, 0.0 + 0.001 * i as f64]); // lost
            d.push(vec![5.0, 0.3, 0.3 + 0.01 * i as f64]); // jolted
        }
        let kind = |i: usize| {
            if i < 20 { 0 } else { 1 + (i - 20) % 3 }
        };
        for first in [0, 7, 21] {
            let o = coverage_order(&d, first);
            assert_eq!(o.len(), d.len());
            let mut seen: Vec<usize> = o[..4].iter().map(|&i| kind(i)).collect();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), 4, "first four from {first}: {:?}", &o[..4]);
            let mut all = o.clone();
            all.sort_unstable();
            assert_eq!(all, (0..d.len()).collect::<Vec<_>>(), "a permutation");
        }
    }

    #[test]
    fn constant_columns_and_empty_input_are_harmless() {
        assert!(coverage_order(&[], 0).is_empty());
        let d = vec![vec![1.0, 2.0]; 3];
        assert_eq!(coverage_order(&d, 1), vec![1, 0, 2]);
        let z = standardize(&[vec![f64::NAN, 1.0], vec![2.0, 1.0]]);
        assert!(z.iter().flatten().all(|x| x.is_finite()));
    }
}

//! `demotape eval`: how right an annotation layer is, against a reference layer.
//!
//! For each episode the *predicted* layer is the automatic one (`<stem>.annotations.json`,
//! from `demotape annotate`) and the *reference* is, by default, the first of: the human
//! review (`<stem>.review.json` with at least one correction), a reference file
//! `<stem>.reference.json` (`{"outcome": "success", "phases": [{"phase", "start_s",
//! "end_s"}…]}`, written by hand or by another tool), the simulator's `<stem>.truth.json`.
//!
//! Scores:
//! - boundaries: every reference transition (phase a → phase b at t) is matched to the
//!   nearest unused predicted transition of the same pair; within `tolerance_s` it is a hit
//!   (its error counts), otherwise a miss; predicted transitions left unmatched are false
//!   alarms. Median and 95th percentile of the hit errors, recall and precision.
//! - outcome: the confusion matrix (reference × predicted), accuracy, macro-F1 over the
//!   classes that occur.
//! - calibration: expected calibration error of the outcome confidence (10 equal-width bins:
//!   Σ |accuracy − mean confidence| × share of episodes), and the mean confidence of right
//!   and of wrong outcomes.
//!
//! Episodes are grouped by their directory (a dataset, a simulator family): every group gets
//! its own figures, never only the overall ones.

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One layer's labels: phases (name, start s, end s) and an outcome with its confidence.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Layer {
    pub source: String,
    pub outcome: Option<String>,
    pub confidence: Option<f64>,
    pub phases: Vec<(String, f64, f64)>,
}

/// Transitions (from, to, time) of a phase sequence.
pub fn transitions(phases: &[(String, f64, f64)]) -> Vec<(String, String, f64)> {
    phases
        .windows(2)
        .map(|w| (w[0].0.clone(), w[1].0.clone(), w[1].1))
        .collect()
}

/// Boundary matching of one episode.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BoundaryMatch {
    /// |predicted − reference| of each hit, ms.
    pub errors_ms: Vec<f64>,
    pub misses: usize,
    pub false_alarms: usize,
    pub reference: usize,
    /// The missed reference transitions, `from→to`.
    pub missed: Vec<String>,
}

/// Match reference transitions to predicted ones of the same pair (nearest unused first);
/// beyond `tolerance_s` (when given) a match is a miss and leaves the prediction unused.
/// A transition from or to a `segment` span (a task without a grasp, `taxonomy.md`) carries
/// no phase names to compare: it matches any transition, by time alone.
pub fn match_boundaries(
    reference: &[(String, String, f64)],
    predicted: &[(String, String, f64)],
    tolerance_s: Option<f64>,
) -> BoundaryMatch {
    let mut used = vec![false; predicted.len()];
    let mut out = BoundaryMatch {
        reference: reference.len(),
        ..Default::default()
    };
    for (a, b, t) in reference {
        let best = predicted
            .iter()
            .enumerate()
            .filter(|(i, (pa, pb, _))| {
                !used[*i]
                    && ((pa == a && pb == b)
                        || [a, b, pa, pb].iter().any(|x| x.as_str() == "segment"))
            })
            .min_by(|x, y| (x.1.2 - t).abs().total_cmp(&(y.1.2 - t).abs()));
        match best {
            Some((i, (_, _, p))) if tolerance_s.is_none_or(|tol| (p - t).abs() <= tol) => {
                used[i] = true;
                out.errors_ms.push((p - t).abs() * 1e3);
            }
            _ => {
                out.misses += 1;
                out.missed.push(format!("{a}→{b}"));
            }
        }
    }
    out.false_alarms = used.iter().filter(|u| !**u).count();
    out
}

/// Which reference layer to score against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reference {
    /// Human review, else `<stem>.reference.json`, else the simulator's truth.
    Auto,
    Human,
    File,
    Truth,
}

/// The predicted (automatic) layer of `episode`.
pub fn predicted(episode: &Path, labels_dir: Option<&Path>) -> anyhow::Result<Layer> {
    let (sidecar, _) = crate::label::outputs(episode, labels_dir);
    if !sidecar.exists() {
        anyhow::bail!(
            "{}: not annotated (no {}; run `demotape annotate` first)",
            episode.display(),
            sidecar.display()
        );
    }
    let v = crate::review::load_auto(&sidecar)?;
    Ok(Layer {
        source: "auto".into(),
        outcome: v["outcome"].as_str().map(str::to_string),
        confidence: v["confidence"].as_f64(),
        phases: crate::review::phases_of(&v),
    })
}

/// The reference layer of `episode` (`None`: it has none of the kind asked for).
pub fn reference(
    episode: &Path,
    labels_dir: Option<&Path>,
    kind: Reference,
) -> anyhow::Result<Option<Layer>> {
    let with_ext = |ext: &str| {
        let stem = episode.file_stem().unwrap_or_default().to_string_lossy();
        episode.with_file_name(format!("{stem}.{ext}"))
    };
    let human = || -> anyhow::Result<Option<Layer>> {
        let (sidecar, _) = crate::label::outputs(episode, labels_dir);
        if !sidecar.exists() {
            return Ok(None);
        }
        let review = crate::review::load_review(&sidecar)?;
        if review.history.is_empty() {
            return Ok(None);
        }
        let auto = crate::review::load_auto(&sidecar)?;
        let e = crate::review::effective(&auto, &review)
            .map_err(|e| anyhow::anyhow!("{}: {e}", sidecar.display()))?;
        Ok(Some(Layer {
            source: "human".into(),
            outcome: Some(e.outcome).filter(|o| !o.is_empty()),
            confidence: None,
            phases: e.phases,
        }))
    };
    let file = |ext: &str, source: &str| -> anyhow::Result<Option<Layer>> {
        let p = with_ext(ext);
        if !p.exists() {
            return Ok(None);
        }
        let v = crate::review::load_auto(&p)?;
        Ok(Some(Layer {
            source: source.into(),
            outcome: v["outcome"].as_str().map(str::to_string),
            confidence: None,
            phases: crate::review::phases_of(&v),
        }))
    };
    match kind {
        Reference::Human => human(),
        Reference::File => file("reference.json", "reference"),
        Reference::Truth => file("truth.json", "truth"),
        Reference::Auto => {
            if let Some(l) = human()? {
                return Ok(Some(l));
            }
            if let Some(l) = file("reference.json", "reference")? {
                return Ok(Some(l));
            }
            file("truth.json", "truth")
        }
    }
}

/// One episode's scores.
#[derive(Clone, Debug, Serialize)]
pub struct EpisodeScore {
    pub episode: PathBuf,
    pub group: String,
    pub reference: String,
    pub boundaries: BoundaryMatch,
    pub outcome_reference: Option<String>,
    pub outcome_predicted: Option<String>,
    pub confidence: Option<f64>,
}

/// Figures over a set of episodes.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub episodes: usize,
    pub boundaries: usize,
    pub boundary_median_ms: Option<f64>,
    pub boundary_p95_ms: Option<f64>,
    pub misses: usize,
    pub false_alarms: usize,
    /// Hits / reference boundaries.
    pub recall: Option<f64>,
    /// Hits / predicted boundaries.
    pub precision: Option<f64>,
    pub outcomes: usize,
    pub accuracy: Option<f64>,
    pub macro_f1: Option<f64>,
    /// reference → predicted → count
    pub confusion: BTreeMap<String, BTreeMap<String, usize>>,
    pub ece: Option<f64>,
    pub mean_confidence_right: Option<f64>,
    pub mean_confidence_wrong: Option<f64>,
}

fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    Some(sorted[i.min(sorted.len() - 1)])
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Expected calibration error over `(confidence, right)` pairs, `bins` equal-width bins.
pub fn ece(pairs: &[(f64, bool)], bins: usize) -> Option<f64> {
    if pairs.is_empty() || bins == 0 {
        return None;
    }
    let mut acc = vec![(0.0f64, 0.0f64, 0usize); bins];
    for (c, right) in pairs {
        let b = ((c.clamp(0.0, 1.0) * bins as f64) as usize).min(bins - 1);
        acc[b].0 += c;
        acc[b].1 += f64::from(u8::from(*right));
        acc[b].2 += 1;
    }
    let n = pairs.len() as f64;
    Some(
        acc.iter()
            .filter(|b| b.2 > 0)
            .map(|(c, r, k)| ((r - c) / *k as f64).abs() * (*k as f64 / n))
            .sum(),
    )
}

/// Summarize episode scores.
pub fn summarize(scores: &[&EpisodeScore]) -> Summary {
    let mut s = Summary {
        episodes: scores.len(),
        ..Default::default()
    };
    let mut errors: Vec<f64> = Vec::new();
    let mut predicted_total = 0usize;
    let mut pairs = Vec::new();
    let (mut right_c, mut wrong_c) = (Vec::new(), Vec::new());
    for e in scores {
        errors.extend(&e.boundaries.errors_ms);
        s.boundaries += e.boundaries.reference;
        s.misses += e.boundaries.misses;
        s.false_alarms += e.boundaries.false_alarms;
        predicted_total += e.boundaries.errors_ms.len() + e.boundaries.false_alarms;
        if let (Some(r), Some(p)) = (&e.outcome_reference, &e.outcome_predicted) {
            s.outcomes += 1;
            *s.confusion
                .entry(r.clone())
                .or_default()
                .entry(p.clone())
                .or_default() += 1;
            if let Some(c) = e.confidence {
                pairs.push((c, r == p));
                if r == p {
                    right_c.push(c);
                } else {
                    wrong_c.push(c);
                }
            }
        }
    }
    errors.sort_by(f64::total_cmp);
    s.boundary_median_ms = quantile(&errors, 0.5);
    s.boundary_p95_ms = quantile(&errors, 0.95);
    if s.boundaries > 0 {
        s.recall = Some(errors.len() as f64 / s.boundaries as f64);
    }
    if predicted_total > 0 {
        s.precision = Some(errors.len() as f64 / predicted_total as f64);
    }
    if s.outcomes > 0 {
        let right: usize = s
            .confusion
            .iter()
            .map(|(r, row)| row.get(r).copied().unwrap_or(0))
            .sum();
        s.accuracy = Some(right as f64 / s.outcomes as f64);
        let mut classes: Vec<&String> = s.confusion.keys().collect();
        for row in s.confusion.values() {
            classes.extend(row.keys());
        }
        classes.sort();
        classes.dedup();
        let f1: Vec<f64> = classes
            .iter()
            .map(|c| {
                let tp = s
                    .confusion
                    .get(*c)
                    .and_then(|r| r.get(*c))
                    .copied()
                    .unwrap_or(0) as f64;
                let as_ref: usize = s.confusion.get(*c).map_or(0, |r| r.values().sum());
                let as_pred: usize = s.confusion.values().filter_map(|r| r.get(*c)).sum();
                let denom = (as_ref + as_pred) as f64;
                if denom == 0.0 { 0.0 } else { 2.0 * tp / denom }
            })
            .collect();
        s.macro_f1 = mean(&f1);
    }
    s.ece = ece(&pairs, 10);
    s.mean_confidence_right = mean(&right_c);
    s.mean_confidence_wrong = mean(&wrong_c);
    s
}

#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    pub tolerance_s: f64,
    pub overall: Summary,
    /// Per directory (dataset, simulator family).
    pub groups: BTreeMap<String, Summary>,
    pub episodes: Vec<EpisodeScore>,
    /// Episodes left out, with why (not annotated, no reference).
    pub skipped: Vec<(PathBuf, String)>,
}

/// Score every episode under `paths`.
pub fn eval(
    paths: &[PathBuf],
    labels_dir: Option<&Path>,
    kind: Reference,
    tolerance_s: f64,
) -> anyhow::Result<EvalReport> {
    let files = crate::label::collect(paths);
    if files.is_empty() {
        anyhow::bail!("no .mcap episode found");
    }
    let mut episodes = Vec::new();
    let mut skipped = Vec::new();
    for f in files {
        let pred = match predicted(&f, labels_dir) {
            Ok(p) => p,
            Err(e) => {
                skipped.push((f, format!("{e:#}")));
                continue;
            }
        };
        let Some(refl) = reference(&f, labels_dir, kind)? else {
            skipped.push((
                f,
                "no reference layer (review, reference.json or truth.json)".into(),
            ));
            continue;
        };
        let boundaries = match_boundaries(
            &transitions(&refl.phases),
            &transitions(&pred.phases),
            Some(tolerance_s),
        );
        let group = f
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        episodes.push(EpisodeScore {
            episode: f,
            group,
            reference: refl.source,
            boundaries,
            outcome_reference: refl.outcome,
            outcome_predicted: pred.outcome,
            confidence: pred.confidence,
        });
    }
    let mut groups: BTreeMap<String, Vec<&EpisodeScore>> = BTreeMap::new();
    for e in &episodes {
        groups.entry(e.group.clone()).or_default().push(e);
    }
    Ok(EvalReport {
        tolerance_s,
        overall: summarize(&episodes.iter().collect::<Vec<_>>()),
        groups: groups
            .into_iter()
            .map(|(g, v)| (g, summarize(&v)))
            .collect(),
        episodes,
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ph(v: &[(&str, f64)]) -> Vec<(String, f64, f64)> {
        v.iter()
            .enumerate()
            .map(|(i, (n, t))| (n.to_string(), *t, v.get(i + 1).map_or(10.0, |x| x.1)))
            .collect()
    }

    #[test]
    fn boundaries_match_by_pair_and_tolerance() {
        let r = transitions(&ph(&[
            ("idle", 0.0),
            ("reach", 1.0),
            ("grasp", 3.0),
            ("lift", 4.0),
        ]));
        let p = transitions(&ph(&[
            ("idle", 0.0),
            ("reach", 1.02),
            ("grasp", 4.5),
            ("lift", 5.0),
            ("retreat", 7.0),
        ]));
        let m = match_boundaries(&r, &p, Some(1.0));
        // reach hit (20 ms), grasp at 1.5 s off: a miss and a false alarm, lift hit (1 s)
        assert_eq!(m.reference, 3);
        assert_eq!(m.errors_ms.len(), 2);
        assert!((m.errors_ms[0] - 20.0).abs() < 1e-9);
        assert_eq!(m.misses, 1);
        assert_eq!(m.false_alarms, 2, "the far grasp and the retreat");
        let loose = match_boundaries(&r, &p, None);
        assert_eq!((loose.misses, loose.false_alarms), (0, 1));
        // segments carry no names: matched by time, against named phases too
        let seg = transitions(&ph(&[("segment", 0.0), ("segment", 2.0), ("segment", 5.0)]));
        let m = match_boundaries(&seg, &p, Some(0.6));
        assert_eq!(
            m.errors_ms.len(),
            1,
            "5.0 ↔ lift 5.0; 2.0 has nothing within 0.6 s"
        );
        assert_eq!((m.misses, m.false_alarms), (1, 3));
        let m = match_boundaries(&seg, &seg, Some(0.0));
        assert_eq!((m.misses, m.false_alarms, m.errors_ms.len()), (0, 0, 2));
    }

    #[test]
    fn outcome_scores_and_calibration() {
        let ep = |r: &str, p: &str, c: f64| EpisodeScore {
            episode: PathBuf::from("x.mcap"),
            group: "g".into(),
            reference: "truth".into(),
            boundaries: BoundaryMatch::default(),
            outcome_reference: Some(r.into()),
            outcome_predicted: Some(p.into()),
            confidence: Some(c),
        };
        let v = [
            ep("success", "success", 0.95),
            ep("success", "success", 0.95),
            ep("slip", "success", 0.95),
            ep("drop", "drop", 0.55),
        ];
        let s = summarize(&v.iter().collect::<Vec<_>>());
        assert_eq!(s.outcomes, 4);
        assert_eq!(s.accuracy, Some(0.75));
        // F1: success 2·2/(2+3) = 0.8, slip 0, drop 1 → mean 0.6
        assert!((s.macro_f1.unwrap() - 0.6).abs() < 1e-12);
        assert_eq!(s.confusion["slip"]["success"], 1);
        // bins: 0.95 → 2 of 3 right (|0.667 − 0.95| × 3/4), 0.55 → 1 of 1 (|1 − 0.55| × 1/4)
        let want = (2.0 / 3.0 - 0.95f64).abs() * 0.75 + 0.45 * 0.25;
        assert!((s.ece.unwrap() - want).abs() < 1e-12, "{:?}", s.ece);
        assert_eq!(s.mean_confidence_wrong, Some(0.95));
        assert!(ece(&[], 10).is_none());
    }
}

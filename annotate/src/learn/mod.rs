//! Learning a task from reviewed episodes (`demotape train`, `annotate --model`,
//! `eval --cv`).
//!
//! A [`Model`] is fitted on episodes that carry a reference layer (a human review, a
//! `reference.json`, the simulator's truth) and has two parts:
//!
//! - **boundaries**: every training episode is a *template*: its [`features::Series`] and its
//!   reference phases. A new episode is aligned to every template by dynamic time warping
//!   ([`dtw`]); the nearest templates vote for a phase sequence, and each boundary of that
//!   sequence is the median, over the nearest templates that have it, of where the template's
//!   boundary falls on the new episode. Their spread is the *disagreement* (ms) that review
//!   order puts first.
//! - **outcome**: L2-regularised multinomial logistic regression (`linfa-logistic`) over the
//!   episode's outcome figures ([`features::outcome_features`]: how the gripper closed, what
//!   it held and lost, and the rules' verdict), classes balanced by repeating the rarer ones;
//!   its top probability is recalibrated by Platt scaling fitted on out-of-fold predictions
//!   (leave-one-out, or 5 folds past 40 episodes).
//!
//! A model applies to an episode of the same robot and signal configuration (`config_hash`),
//! the same task (when both name one) and the same channels; otherwise the rules label it and
//! the layer's provenance says why. Everything is deterministic for the same inputs.

pub mod cv;
pub mod dtw;
pub mod features;
pub mod load;
pub mod select;

use crate::segment::Segmentation;
use features::{C, OUTCOME_FEATURES, RULE_FEATURES, Scales, Series};
use hal::sim::plan::{Outcome, Phase, PhaseSpan};
use linfa::prelude::*;
use serde::{Deserialize, Serialize};

pub const FORMAT: &str = "demotape-model";
/// v2: outcome figures relative to the held load (`load_loss_ratio`, `load_transient`).
pub const VERSION: u32 = 2;
/// How many of the nearest templates vote, and give boundaries.
pub const NEAREST: usize = 5;
/// The DTW band, as a share of the longer series.
pub const BAND: f64 = 0.3;
/// L2 weight of the outcome classifier (on standardised figures).
pub const ALPHA: f64 = 0.1;
/// An episode whose nearest template is this many times farther (DTW cost) than the two
/// farthest-apart templates are from each other is unlike everything reviewed: another
/// task, another setup. The model leaves it to the rules.
pub const UNLIKE: f64 = 8.0;

/// One training episode, as [`train`] takes it.
#[derive(Clone, Debug)]
pub struct Example {
    pub name: String,
    pub task: String,
    pub series: Series,
    pub duration_s: f64,
    pub rules: Segmentation,
    /// Reference phases (name, start s, end s) and outcome.
    pub phases: Vec<(String, f64, f64)>,
    pub outcome: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Template {
    pub episode: String,
    pub series: Series,
    pub phases: Vec<(String, f64, f64)>,
}

/// Platt scaling of the classifier's top probability: `σ(a · logit(p) + b)`, or one rate
/// when the out-of-fold predictions were all right (or all wrong).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Calibration {
    Platt { a: f64, b: f64 },
    Constant { p: f64 },
}

impl Calibration {
    pub fn apply(&self, p: f64) -> f64 {
        match self {
            Calibration::Platt { a, b } => sigmoid(a * logit(p) + b),
            Calibration::Constant { p } => *p,
        }
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln()
}

/// The outcome classifier: standardisation, the fitted weights (figures × classes) and
/// intercepts, and the calibration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OutcomeModel {
    pub classes: Vec<String>,
    pub features: Vec<String>,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// `weights[f][c]`; empty when training saw one class only.
    pub weights: Vec<Vec<f64>>,
    pub intercept: Vec<f64>,
    pub calibration: Calibration,
    /// Training episodes per class.
    pub support: Vec<usize>,
}

impl OutcomeModel {
    /// Class probabilities of one figure vector.
    pub fn probabilities(&self, x: &[f64]) -> Vec<f64> {
        if self.weights.is_empty() {
            return vec![1.0];
        }
        let z: Vec<f64> = (0..self.classes.len())
            .map(|c| {
                self.intercept[c]
                    + x.iter()
                        .enumerate()
                        .map(|(f, v)| (v - self.mean[f]) / self.std[f] * self.weights[f][c])
                        .sum::<f64>()
            })
            .collect();
        let m = z.iter().copied().fold(f64::MIN, f64::max);
        let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
        let s: f64 = e.iter().sum();
        e.iter().map(|v| v / s).collect()
    }

    /// The most probable class and its raw probability.
    pub fn predict(&self, x: &[f64]) -> (usize, f64) {
        let p = self.probabilities(x);
        p.iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or((0, 1.0), |(i, v)| (i, *v))
    }
}

/// Scores a model got on its own training set by cross-validation (`eval --cv` style).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OwnScores {
    pub folds: usize,
    pub boundary_median_ms: Option<f64>,
    pub recall: Option<f64>,
    pub macro_f1: Option<f64>,
    pub accuracy: Option<f64>,
    pub ece: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Model {
    pub format: String,
    pub version: u32,
    pub tool: String,
    /// The task the training episodes were recorded for (their `task` metadata, or `train
    /// --task`); empty: not named.
    pub task: String,
    /// The annotate configuration's hash (signals, robot, arm, gates): the robot it knows.
    pub config_hash: String,
    /// Channels every training episode had; an episode must have them too.
    pub channels: Vec<String>,
    /// Whether the outcome classifier sees the rules' verdict (`train --without-rules`: no).
    pub uses_rules: bool,
    pub seed: u64,
    pub episodes: Vec<String>,
    pub scales: Scales,
    pub templates: Vec<Template>,
    pub outcome: Option<OutcomeModel>,
    /// The largest DTW cost between two templates (`None` with one template): how far apart
    /// the reviewed episodes of this task are.
    pub spread_cost: Option<f64>,
    /// Its own cross-validated scores (`None` with fewer than 3 episodes).
    pub cv: Option<OwnScores>,
    /// The file it was loaded from (not stored).
    #[serde(skip)]
    pub source: String,
}

/// What a model says of one episode.
#[derive(Clone, Debug, Serialize)]
pub struct Prediction {
    pub phases: Vec<PhaseSpan>,
    pub outcome: Option<Outcome>,
    pub confidence: f64,
    /// Median, over boundaries, of the spread (median absolute deviation, ms) of where the
    /// nearest templates put it: how much they disagree.
    pub disagreement_ms: f64,
    /// The templates that gave the boundaries, nearest first.
    pub nearest: Vec<String>,
    /// "model" or why the rules' outcome was kept.
    pub outcome_source: String,
    /// Why the model left the whole episode to the rules (it is unlike every template).
    pub refused: Option<String>,
}

pub fn phase_named(name: &str) -> Phase {
    Phase::ALL
        .iter()
        .copied()
        .find(|p| p.as_str() == name)
        .unwrap_or(Phase::Segment)
}

fn outcome_named(name: &str) -> Option<Outcome> {
    [
        Outcome::Success,
        Outcome::Slip,
        Outcome::Drop,
        Outcome::Miss,
    ]
    .into_iter()
    .find(|o| format!("{o:?}").eq_ignore_ascii_case(name))
}

fn present_mask(channels: &[String]) -> [bool; C] {
    let mut m = [false; C];
    for (c, name) in features::CHANNELS.iter().enumerate() {
        m[c] = channels.iter().any(|x| x == name);
    }
    m
}

/// The figure vector the classifier takes (the rules' verdict dropped without rules).
fn figures(s: &Series, rules: &Segmentation, uses_rules: bool) -> Option<Vec<f64>> {
    let mut f = features::outcome_features(s, rules)?;
    if !uses_rules {
        f.truncate(f.len() - RULE_FEATURES);
    }
    Some(f)
}

/// Fit the outcome classifier on `(figures, class index)` rows; `None` with no rows.
fn fit_outcome(
    rows: &[(Vec<f64>, usize)],
    classes: &[String],
    names: &[String],
    seed: u64,
) -> anyhow::Result<Option<OutcomeModel>> {
    if rows.is_empty() {
        return Ok(None);
    }
    let k = rows[0].0.len();
    let n = rows.len() as f64;
    let mean: Vec<f64> = (0..k)
        .map(|f| rows.iter().map(|r| r.0[f]).sum::<f64>() / n)
        .collect();
    let std: Vec<f64> = (0..k)
        .map(|f| {
            let v = rows.iter().map(|r| (r.0[f] - mean[f]).powi(2)).sum::<f64>() / n;
            if v.sqrt() > 1e-9 { v.sqrt() } else { 1.0 }
        })
        .collect();
    let mut support = vec![0usize; classes.len()];
    for r in rows {
        support[r.1] += 1;
    }
    let seen: Vec<usize> = (0..classes.len()).filter(|c| support[*c] > 0).collect();
    let base = OutcomeModel {
        classes: classes.to_vec(),
        features: names.to_vec(),
        mean,
        std,
        weights: Vec::new(),
        intercept: Vec::new(),
        calibration: Calibration::Constant {
            p: (n + 1.0) / (n + 2.0),
        },
        support: support.clone(),
    };
    if seen.len() < 2 {
        // one class: it is the answer, as sure as the rule of succession allows
        let mut only = base;
        only.classes = vec![classes[seen[0]].clone()];
        only.support = vec![support[seen[0]]];
        return Ok(Some(only));
    }
    let (mu, sd) = (base.mean.clone(), base.std.clone());
    let weights_intercept =
        |rows: &[(Vec<f64>, usize)]| -> anyhow::Result<(Vec<Vec<f64>>, Vec<f64>)> {
            // balance: every class repeated up to the largest one's count
            let mut count = vec![0usize; classes.len()];
            for r in rows {
                count[r.1] += 1;
            }
            let most = count.iter().copied().max().unwrap_or(1);
            let mut x = Vec::new();
            let mut y = Vec::new();
            for r in rows {
                let times = (most as f64 / count[r.1] as f64).round().max(1.0) as usize;
                for _ in 0..times {
                    x.extend(r.0.iter().enumerate().map(|(f, v)| (v - mu[f]) / sd[f]));
                    y.push(r.1);
                }
            }
            let records = ndarray::Array2::from_shape_vec((y.len(), k), x)?;
            let targets = ndarray::Array1::from(y);
            let ds = linfa::Dataset::new(records, targets);
            let fitted = linfa_logistic::MultiLogisticRegression::default()
                .alpha(ALPHA)
                .max_iterations(200)
                .fit(&ds)
                .map_err(|e| anyhow::anyhow!("outcome classifier: {e}"))?;
            // the fitted classes are the class indices present, sorted; spread them over all
            let mut w = vec![vec![0.0; classes.len()]; k];
            let mut b = vec![-1e3; classes.len()];
            for (j, c) in fitted.classes().iter().enumerate() {
                b[*c] = fitted.intercept()[j];
                for (f, row) in w.iter_mut().enumerate() {
                    row[*c] = fitted.params()[(f, j)];
                }
            }
            Ok((w, b))
        };
    let (weights, intercept) = weights_intercept(rows)?;
    let mut model = OutcomeModel {
        weights,
        intercept,
        ..base
    };
    // out-of-fold top probabilities, for calibration
    let folds = fold_of(
        rows.len(),
        if rows.len() <= 40 { rows.len() } else { 5 },
        seed,
    );
    let mut oof: Vec<(f64, bool)> = Vec::new();
    for f in 0..folds.iter().copied().max().map_or(0, |m| m + 1) {
        let train: Vec<(Vec<f64>, usize)> = rows
            .iter()
            .zip(&folds)
            .filter(|(_, g)| **g != f)
            .map(|(r, _)| r.clone())
            .collect();
        if train
            .iter()
            .map(|r| r.1)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            < 2
        {
            continue;
        }
        let (w, b) = weights_intercept(&train)?;
        let m = OutcomeModel {
            weights: w,
            intercept: b,
            ..model.clone()
        };
        for (r, _) in rows.iter().zip(&folds).filter(|(_, g)| **g == f) {
            let (c, p) = m.predict(&r.0);
            oof.push((p, c == r.1));
        }
    }
    model.calibration = platt(&oof)?;
    Ok(Some(model))
}

/// Platt scaling fitted on out-of-fold `(top probability, right)` pairs.
fn platt(oof: &[(f64, bool)]) -> anyhow::Result<Calibration> {
    let right = oof.iter().filter(|o| o.1).count();
    let n = oof.len();
    if right == 0 || right == n || n < 4 {
        return Ok(Calibration::Constant {
            p: (right as f64 + 1.0) / (n as f64 + 2.0),
        });
    }
    let x = ndarray::Array2::from_shape_vec((n, 1), oof.iter().map(|o| logit(o.0)).collect())?;
    let y = ndarray::Array1::from(oof.iter().map(|o| o.1).collect::<Vec<bool>>());
    let fitted = linfa_logistic::LogisticRegression::default()
        .alpha(0.01)
        .max_iterations(200)
        .fit(&linfa::Dataset::new(x, y))
        .map_err(|e| anyhow::anyhow!("calibration: {e}"))?;
    // the fitted probability is of the larger label, `true` (right)
    Ok(Calibration::Platt {
        a: fitted.params()[0],
        b: fitted.intercept(),
    })
}

/// A fold number for each of `n` items, `k` folds, shuffled by `seed` (deterministic).
pub fn fold_of(n: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    shuffle(&mut order, seed);
    let mut out = vec![0; n];
    for (pos, i) in order.iter().enumerate() {
        out[*i] = pos % k.max(1);
    }
    out
}

/// Fisher–Yates with a splitmix64 stream: the same order for the same seed everywhere.
pub fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut s = seed ^ 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for i in (1..v.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

/// Options of [`train`].
#[derive(Clone, Debug)]
pub struct TrainOptions {
    pub task: Option<String>,
    pub config_hash: String,
    pub uses_rules: bool,
    pub seed: u64,
    /// Cross-validate the model on its own episodes (folds; 0: no).
    pub self_cv: usize,
}

/// Fit a model on `examples` (at least one).
pub fn train(examples: &[Example], opt: &TrainOptions) -> anyhow::Result<Model> {
    if examples.is_empty() {
        anyhow::bail!("no training episode has a reference layer");
    }
    let task = match &opt.task {
        Some(t) => t.clone(),
        None => {
            let mut tasks: Vec<&str> = examples.iter().map(|e| e.task.as_str()).collect();
            tasks.sort();
            tasks.dedup();
            if tasks.len() > 1 {
                anyhow::bail!(
                    "the training episodes were recorded for {} tasks ({}): a model learns one \
                     task; train one per task, or name it with --task",
                    tasks.len(),
                    tasks.join(", ")
                );
            }
            tasks.first().map_or(String::new(), |t| t.to_string())
        }
    };
    // channels: those every training episode has
    let mut mask = [true; C];
    for e in examples {
        for (c, m) in mask.iter_mut().enumerate() {
            *m &= e.series.present[c];
        }
    }
    let channels: Vec<String> = features::CHANNELS
        .iter()
        .zip(mask)
        .filter(|(_, m)| *m)
        .map(|(n, _)| n.to_string())
        .collect();
    let scales = Scales::fit(&examples.iter().map(|e| &e.series).collect::<Vec<_>>());
    let templates = examples
        .iter()
        .filter(|e| e.phases.len() >= 2)
        .map(|e| Template {
            episode: e.name.clone(),
            series: e.series.clone(),
            phases: e.phases.clone(),
        })
        .collect();
    // outcome
    let mut classes: Vec<String> = examples
        .iter()
        .filter_map(|e| e.outcome.clone())
        .filter(|o| outcome_named(o).is_some())
        .collect();
    classes.sort();
    classes.dedup();
    let names: Vec<String> = OUTCOME_FEATURES
        .iter()
        .take(if opt.uses_rules {
            OUTCOME_FEATURES.len()
        } else {
            OUTCOME_FEATURES.len() - RULE_FEATURES
        })
        .map(|s| s.to_string())
        .collect();
    let rows: Vec<(Vec<f64>, usize)> = examples
        .iter()
        .filter_map(|e| {
            let o = e.outcome.as_ref()?;
            let c = classes.iter().position(|x| x == o)?;
            Some((figures(&e.series, &e.rules, opt.uses_rules)?, c))
        })
        .collect();
    let outcome = fit_outcome(&rows, &classes, &names, opt.seed)?;
    let mut model = Model {
        format: FORMAT.into(),
        version: VERSION,
        tool: concat!("demotape ", env!("CARGO_PKG_VERSION")).into(),
        task,
        config_hash: opt.config_hash.clone(),
        channels,
        uses_rules: opt.uses_rules,
        seed: opt.seed,
        episodes: examples.iter().map(|e| e.name.clone()).collect(),
        scales,
        templates,
        outcome,
        spread_cost: None,
        cv: None,
        source: String::new(),
    };
    model.spread_cost = model.template_spread();
    if opt.self_cv >= 2 && examples.len() >= 3 {
        let k = opt.self_cv.min(examples.len());
        let report = cv::kfold(examples, k, opt, 1.0)?;
        let s = &report.summary;
        model.cv = Some(OwnScores {
            folds: k,
            boundary_median_ms: s.boundary_median_ms,
            recall: s.recall,
            macro_f1: s.macro_f1,
            accuracy: s.accuracy,
            ece: s.ece,
        });
    }
    Ok(model)
}

/// Why a model does not apply to an episode (`None`: it does).
pub fn refuses(model: &Model, task: &str, series: &Series) -> Option<String> {
    if !model.task.is_empty() && !task.is_empty() && model.task != task {
        return Some(format!(
            "the model learned task {:?}, this episode was recorded for {:?}",
            model.task, task
        ));
    }
    let missing: Vec<&str> = features::CHANNELS
        .iter()
        .enumerate()
        .filter(|(c, n)| model.channels.iter().any(|x| x == *n) && !series.present[*c])
        .map(|(_, n)| *n)
        .collect();
    if !missing.is_empty() {
        return Some(format!(
            "the model needs {} and this episode has none",
            missing.join(", ")
        ));
    }
    if model.templates.is_empty() && model.outcome.is_none() {
        return Some("the model learned nothing (no reference phases or outcomes)".into());
    }
    None
}

impl Model {
    fn template_spread(&self) -> Option<f64> {
        if self.templates.len() < 2 {
            return None;
        }
        let mask = present_mask(&self.channels);
        let scaled: Vec<Vec<f64>> = self
            .templates
            .iter()
            .map(|t| self.scales.apply(&t.series, &mask))
            .collect();
        // the largest cost between any two templates (each pair once): the nearest-neighbour
        // distance of a handful of templates understates how varied the task is, their
        // diameter much less so
        let mut worst: f64 = 0.0;
        for (i, a) in scaled.iter().enumerate() {
            for b in &scaled[i + 1..] {
                if let Some(x) = dtw::align(a, b, C, BAND) {
                    worst = worst.max(x.cost);
                }
            }
        }
        Some(worst)
    }

    /// The DTW cost from `s` to its nearest template.
    pub fn nearest_cost(&self, s: &Series) -> Option<f64> {
        let mask = present_mask(&self.channels);
        let me = self.scales.apply(s, &mask);
        self.templates
            .iter()
            .filter_map(|t| dtw::align(&self.scales.apply(&t.series, &mask), &me, C, BAND))
            .map(|a| a.cost)
            .min_by(f64::total_cmp)
    }

    pub fn load(path: &std::path::Path) -> anyhow::Result<Model> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let mut m: Model = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: not a demotape model: {e}", path.display()))?;
        m.source = path.display().to_string();
        if m.format != FORMAT || m.version != VERSION {
            anyhow::bail!(
                "{}: format {} v{}, this demotape reads {FORMAT} v{VERSION}",
                path.display(),
                m.format,
                m.version
            );
        }
        Ok(m)
    }

    /// Label one episode. `rules` is the rule-based segmentation of the same episode: its
    /// phases stand when no template applies, its outcome when the classifier never saw the
    /// class the rules found (and the rules are used).
    pub fn predict(&self, s: &Series, rules: &Segmentation, duration_s: f64) -> Prediction {
        let mask = present_mask(&self.channels);
        let mut pred = Prediction {
            phases: rules.phases.clone(),
            outcome: rules.outcome,
            confidence: rules.confidence,
            disagreement_ms: 0.0,
            nearest: Vec::new(),
            outcome_source: "rules".into(),
            refused: None,
        };
        if !self.templates.is_empty() {
            let me = self.scales.apply(s, &mask);
            let mut al: Vec<(usize, dtw::Alignment)> = self
                .templates
                .iter()
                .enumerate()
                .filter_map(|(i, t)| {
                    dtw::align(&self.scales.apply(&t.series, &mask), &me, C, BAND).map(|a| (i, a))
                })
                .collect();
            al.sort_by(|a, b| a.1.cost.total_cmp(&b.1.cost));
            if let (Some(best), Some(spread)) = (al.first(), self.spread_cost)
                && best.1.cost > UNLIKE * spread.max(1e-9)
            {
                pred.refused = Some(format!(
                    "unlike every reviewed episode (alignment cost {:.3} to the nearest, over \
                     {UNLIKE}× the {:.3} the reviewed episodes are apart at most): another task?",
                    best.1.cost, spread
                ));
                return pred;
            }
            let seq = |i: usize| -> Vec<&str> {
                self.templates[i]
                    .phases
                    .iter()
                    .map(|p| p.0.as_str())
                    .collect()
            };
            // the nearest templates vote for a phase sequence (ties: the nearer)
            let voters = &al[..al.len().min(NEAREST)];
            let mut votes: Vec<(Vec<&str>, usize, f64)> = Vec::new();
            for (i, a) in voters {
                let q = seq(*i);
                match votes.iter_mut().find(|v| v.0 == q) {
                    Some(v) => {
                        v.1 += 1;
                        v.2 += a.cost;
                    }
                    None => votes.push((q, 1, a.cost)),
                }
            }
            votes.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.total_cmp(&b.2)));
            if let Some((chosen, _, _)) = votes.first() {
                let group: Vec<&(usize, dtw::Alignment)> = al
                    .iter()
                    .filter(|(i, _)| seq(*i) == *chosen)
                    .take(NEAREST)
                    .collect();
                let nb = chosen.len() - 1;
                let mut bounds = Vec::with_capacity(nb);
                let mut spreads = Vec::with_capacity(nb);
                for b in 0..nb {
                    let mut at: Vec<f64> = group
                        .iter()
                        .map(|(i, a)| {
                            let t = &self.templates[*i];
                            a.at(t.phases[b + 1].1 / t.series.dt) * s.dt
                        })
                        .collect();
                    at.sort_by(f64::total_cmp);
                    let med = at[at.len() / 2];
                    let mut dev: Vec<f64> = at.iter().map(|x| (x - med).abs()).collect();
                    dev.sort_by(f64::total_cmp);
                    spreads.push(dev[dev.len() / 2] * 1e3);
                    bounds.push(med);
                }
                // boundaries in order, inside the episode
                for i in 1..bounds.len() {
                    bounds[i] = bounds[i].max(bounds[i - 1]);
                }
                let mut phases = Vec::with_capacity(chosen.len());
                let mut start = 0.0;
                for (k, name) in chosen.iter().enumerate() {
                    let end = bounds.get(k).copied().unwrap_or(duration_s).min(duration_s);
                    phases.push(PhaseSpan {
                        phase: phase_named(name),
                        start_s: start,
                        end_s: end.max(start),
                    });
                    start = end.max(start);
                }
                spreads.sort_by(f64::total_cmp);
                pred.disagreement_ms = spreads.get(spreads.len() / 2).copied().unwrap_or(0.0);
                pred.nearest = group
                    .iter()
                    .map(|(i, _)| self.templates[*i].episode.clone())
                    .collect();
                pred.phases = phases;
                if rules.outcome.is_none() && self.outcome.is_none() {
                    // no outcome to be sure of: the share of voters that agree
                    pred.confidence = group.len().min(voters.len()) as f64 / voters.len() as f64;
                }
            }
        }
        if let Some(om) = &self.outcome
            && let Some(x) = figures(s, rules, self.uses_rules)
        {
            let rules_class = rules
                .outcome
                .map(|o| format!("{o:?}").to_lowercase())
                .filter(|c| !om.classes.contains(c));
            match rules_class {
                Some(c) if self.uses_rules => {
                    pred.outcome_source = format!(
                        "rules: the model was never shown a {c} (it knows {})",
                        om.classes.join(", ")
                    );
                }
                _ => {
                    let (c, p) = om.predict(&x);
                    pred.outcome = outcome_named(&om.classes[c]);
                    pred.confidence = om.calibration.apply(p);
                    pred.outcome_source = "model".into();
                    // agreeing with the rules (whose confidence is calibrated on their own)
                    // is more evidence, never less: a model that has seen five episodes
                    // cannot know it is right more often than its rule of succession says
                    if self.uses_rules && pred.outcome.is_some() && pred.outcome == rules.outcome {
                        pred.confidence = pred.confidence.max(rules.confidence);
                        pred.outcome_source = "model (agrees with the rules)".into();
                    }
                }
            }
        }
        pred
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platt_matches_linfa_probabilities() {
        // right answers at high probability, wrong ones at low: a > 0
        let oof: Vec<(f64, bool)> = (0..20)
            .map(|i| {
                let p = 0.4 + 0.03 * i as f64;
                (p, i % 4 != 0 || i > 12)
            })
            .collect();
        let Calibration::Platt { a, b } = platt(&oof).unwrap() else {
            panic!("both kinds present: Platt expected");
        };
        assert!(a > 0.0, "{a}");
        let x = ndarray::Array2::from_shape_vec((20, 1), oof.iter().map(|o| logit(o.0)).collect())
            .unwrap();
        let y = ndarray::Array1::from(oof.iter().map(|o| o.1).collect::<Vec<_>>());
        let f = linfa_logistic::LogisticRegression::default()
            .alpha(0.01)
            .max_iterations(200)
            .fit(&linfa::Dataset::new(x.clone(), y))
            .unwrap();
        let p = f.predict_probabilities(&x);
        for (i, o) in oof.iter().enumerate() {
            assert!((Calibration::Platt { a, b }.apply(o.0) - p[i]).abs() < 1e-9);
        }
        assert_eq!(
            platt(&[(0.9, true), (0.8, true)]).unwrap(),
            Calibration::Constant { p: 0.75 }
        );
    }

    #[test]
    fn folds_are_balanced_and_deterministic() {
        let f = fold_of(10, 3, 7);
        assert_eq!(f, fold_of(10, 3, 7));
        assert_ne!(f, fold_of(10, 3, 8));
        for k in 0..3 {
            let c = f.iter().filter(|x| **x == k).count();
            assert!((3..=4).contains(&c), "{f:?}");
        }
    }
}

//! Cross-validation of [`super::train`]: how well a model learned from some reviewed
//! episodes labels the others, scored as `demotape eval` scores (`crate::eval`).

use super::{Example, TrainOptions, train};
use crate::eval::{EpisodeScore, Summary, match_boundaries, summarize, transitions};
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct CvReport {
    pub folds: usize,
    pub summary: Summary,
    pub episodes: Vec<EpisodeScore>,
}

/// Which episodes of a learning curve's draw are the reviewed ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// A seeded random draw (what reviewing episodes in any order gives).
    #[default]
    Random,
    /// A seeded random first episode, then coverage order
    /// ([`super::select::coverage_order`]: what `review list --order coverage` puts first).
    Coverage,
}

/// One point of a learning curve: trained on `reviewed` episodes, scored on the rest,
/// `repeats` draws of which episodes were reviewed pooled.
#[derive(Clone, Debug, Serialize)]
pub struct CurvePoint {
    pub reviewed: usize,
    pub selection: Selection,
    pub repeats: usize,
    pub scored: usize,
    pub summary: Summary,
    /// Median over the draws of each draw's boundary median (ms).
    pub boundary_median_ms_by_draw: Option<f64>,
}

/// Score labels (phases, outcome, confidence) of `e` against its reference.
fn score_labels(
    e: &Example,
    who: &str,
    phases: &[hal::sim::plan::PhaseSpan],
    outcome: Option<hal::sim::plan::Outcome>,
    confidence: f64,
    tolerance_s: f64,
) -> EpisodeScore {
    let named = crate::segment::named(phases);
    EpisodeScore {
        episode: e.name.clone().into(),
        group: String::new(),
        reference: who.into(),
        boundaries: match_boundaries(
            &transitions(&e.phases),
            &transitions(&named),
            Some(tolerance_s),
        ),
        outcome_reference: e.outcome.clone(),
        outcome_predicted: Some(
            outcome.map_or_else(|| "none".into(), |o| format!("{o:?}").to_lowercase()),
        ),
        confidence: Some(confidence),
    }
}

fn score(model: &super::Model, e: &Example, tolerance_s: f64) -> EpisodeScore {
    let p = model.predict(&e.series, &e.rules, e.duration_s);
    score_labels(e, "cv", &p.phases, p.outcome, p.confidence, tolerance_s)
}

fn inner(opt: &TrainOptions) -> TrainOptions {
    TrainOptions {
        self_cv: 0,
        ..opt.clone()
    }
}

/// K-fold cross-validation: train on K − 1 folds, label the held-out one, score every
/// episode once.
pub fn kfold(
    examples: &[Example],
    k: usize,
    opt: &TrainOptions,
    tolerance_s: f64,
) -> anyhow::Result<CvReport> {
    let k = k.clamp(2, examples.len().max(2));
    if examples.len() < 2 {
        anyhow::bail!(
            "cross-validation needs at least 2 episodes with a reference layer, found {}",
            examples.len()
        );
    }
    let folds = super::fold_of(examples.len(), k, opt.seed);
    let mut episodes = Vec::new();
    for f in 0..k {
        let train_set: Vec<Example> = examples
            .iter()
            .zip(&folds)
            .filter(|(_, g)| **g != f)
            .map(|(e, _)| e.clone())
            .collect();
        let model = train(&train_set, &inner(opt))?;
        for (e, _) in examples.iter().zip(&folds).filter(|(_, g)| **g == f) {
            episodes.push(score(&model, e, tolerance_s));
        }
    }
    Ok(CvReport {
        folds: k,
        summary: summarize(&episodes.iter().collect::<Vec<_>>()),
        episodes,
    })
}

/// A learning curve: for each size, `repeats` seeded draws of that many training episodes,
/// each model scored on every episode it did not learn from.
pub fn learning_curve(
    examples: &[Example],
    sizes: &[usize],
    repeats: usize,
    select: Selection,
    opt: &TrainOptions,
    tolerance_s: f64,
) -> anyhow::Result<Vec<CurvePoint>> {
    let descriptors: Vec<Vec<f64>> = examples
        .iter()
        .map(|e| super::select::descriptor(&e.series, &e.rules))
        .collect();
    let mut out = Vec::new();
    for &n in sizes {
        if n == 0 || n >= examples.len() {
            tracing::warn!(
                "learning curve: {n} reviewed episodes leaves none of {} to score; skipped",
                examples.len()
            );
            continue;
        }
        let mut scores = Vec::new();
        let mut medians = Vec::new();
        for r in 0..repeats.max(1) {
            let mut order: Vec<usize> = (0..examples.len()).collect();
            super::shuffle(
                &mut order,
                opt.seed.wrapping_add(1000 * n as u64 + r as u64),
            );
            if select == Selection::Coverage {
                order = super::select::coverage_order(&descriptors, order[0]);
            }
            let train_set: Vec<Example> = order[..n].iter().map(|i| examples[*i].clone()).collect();
            let model = train(&train_set, &inner(opt))?;
            let draw: Vec<EpisodeScore> = order[n..]
                .iter()
                .map(|i| score(&model, &examples[*i], tolerance_s))
                .collect();
            if let Some(m) = summarize(&draw.iter().collect::<Vec<_>>()).boundary_median_ms {
                medians.push(m);
            }
            scores.extend(draw);
        }
        medians.sort_by(f64::total_cmp);
        out.push(CurvePoint {
            reviewed: n,
            selection: select,
            repeats: repeats.max(1),
            scored: scores.len(),
            summary: summarize(&scores.iter().collect::<Vec<_>>()),
            boundary_median_ms_by_draw: medians.get(medians.len() / 2).copied(),
        });
    }
    Ok(out)
}

/// The rules alone on the same episodes (what the model is compared with).
pub fn rules_baseline(examples: &[Example], tolerance_s: f64) -> Summary {
    let scores: Vec<EpisodeScore> = examples
        .iter()
        .map(|e| {
            let r = &e.rules;
            score_labels(e, "rules", &r.phases, r.outcome, r.confidence, tolerance_s)
        })
        .collect();
    summarize(&scores.iter().collect::<Vec<_>>())
}

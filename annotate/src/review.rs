//! `demotape review`: the human layer. Lists what needs a look (low confidence, failed
//! gates), takes corrections (outcome changed, boundaries moved, notes) from the command line
//! or a file, and keeps them as an append-only history in `<stem>.review.json` that overrides
//! the automatic layer without ever touching it. The effective labels are also written as a
//! `human` layer to `<stem>.annotations.human.mcap`.

use hal::msgs::{Annotation, Header, RosMessage, Time};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One correction by a person.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Correction {
    pub author: String,
    pub reason: String,
    /// UTC time of the correction (ns since the Unix epoch); filled in when recorded.
    pub at_ns: u64,
    /// New episode outcome, if changed.
    pub outcome: Option<String>,
    /// New start time (s from the episode start) per phase name, e.g. {"grasp": 2.91}.
    /// A repeated phase is addressed as "idle#2".
    pub moves: BTreeMap<String, f64>,
    pub note: Option<String>,
}

/// `<stem>.review.json`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct Review {
    pub episode: String,
    pub history: Vec<Correction>,
}

/// Labels after applying the human history on top of the automatic layer.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Effective {
    pub outcome: String,
    pub source: &'static str,
    pub phases: Vec<(String, f64, f64)>,
    pub notes: Vec<String>,
}

pub fn review_path(sidecar: &Path) -> PathBuf {
    let s = sidecar.to_string_lossy();
    PathBuf::from(s.trim_end_matches(".annotations.json").to_string() + ".review.json")
}

pub fn load_auto(sidecar: &Path) -> anyhow::Result<serde_json::Value> {
    let text = std::fs::read_to_string(sidecar)
        .map_err(|e| anyhow::anyhow!("{}: {e}", sidecar.display()))?;
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", sidecar.display()))
}

pub fn load_review(sidecar: &Path) -> anyhow::Result<Review> {
    let p = review_path(sidecar);
    if !p.exists() {
        return Ok(Review {
            episode: sidecar.display().to_string(),
            history: Vec::new(),
        });
    }
    let text = std::fs::read_to_string(&p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
}

fn phase_keys(phases: &[(String, f64, f64)]) -> Vec<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    phases
        .iter()
        .map(|p| {
            let n = seen.entry(p.0.clone()).or_default();
            *n += 1;
            if *n == 1 {
                p.0.clone()
            } else {
                format!("{}#{}", p.0, n)
            }
        })
        .collect()
}

/// The `phases` of a labels document (sidecar, truth, reference) as (name, start s, end s).
pub fn phases_of(v: &serde_json::Value) -> Vec<(String, f64, f64)> {
    v["phases"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    (
                        p["phase"].as_str().unwrap_or("").to_string(),
                        p["start_s"].as_f64().unwrap_or(0.0),
                        p["end_s"].as_f64().unwrap_or(0.0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Apply the history to the automatic labels.
pub fn effective(auto: &serde_json::Value, review: &Review) -> anyhow::Result<Effective> {
    if !auto["phases"].is_array() {
        anyhow::bail!("sidecar has no phases");
    }
    let mut phases = phases_of(auto);
    let mut outcome = auto["outcome"].as_str().unwrap_or("").to_string();
    let mut source = "auto";
    let mut notes = Vec::new();
    for c in &review.history {
        if let Some(o) = &c.outcome {
            outcome = o.clone();
            source = "human";
        }
        let keys = phase_keys(&phases);
        for (name, t) in &c.moves {
            let i = keys.iter().position(|k| k == name).ok_or_else(|| {
                anyhow::anyhow!("no phase {name:?} to move (phases: {})", keys.join(", "))
            })?;
            if i == 0 {
                anyhow::bail!("the first phase starts with the episode and cannot move");
            }
            let (lo, hi) = (phases[i - 1].1, phases[i].2);
            if !(*t > lo && *t < hi) {
                anyhow::bail!(
                    "{name} cannot start at {t:.3} s: it must stay between {lo:.3} s and {hi:.3} s"
                );
            }
            phases[i].1 = *t;
            phases[i - 1].2 = *t;
            source = "human";
        }
        if let Some(n) = &c.note {
            notes.push(format!("{}: {n}", c.author));
        }
    }
    Ok(Effective {
        outcome,
        source,
        phases,
        notes,
    })
}

/// Record a correction: validate it against the current labels, append it to the history,
/// and write the human layer.
pub fn correct(sidecar: &Path, c: Correction) -> anyhow::Result<Effective> {
    match correct_at(sidecar, c, None) {
        Ok((eff, _)) => Ok(eff),
        Err(Refused::Conflict { .. }) => unreachable!("no base revision given"),
        Err(Refused::Invalid(e)) => Err(e),
    }
}

/// Why [`correct_at`] did not record a correction.
#[derive(Debug)]
pub enum Refused {
    /// Someone else corrected the episode since the reviewer's `base` revision: their
    /// corrections, for the reviewer to see (nothing was written).
    Conflict {
        revision: usize,
        since: Vec<Correction>,
    },
    Invalid(anyhow::Error),
}

/// [`correct`] for concurrent reviewers: under an exclusive lock on `<stem>.review.lock`
/// (held across processes: every writer of the history takes it), and, with `base`, only if
/// the history still has `base` corrections — the revision the reviewer saw. Returns the
/// effective labels and the new revision.
pub fn correct_at(
    sidecar: &Path,
    c: Correction,
    base: Option<usize>,
) -> Result<(Effective, usize), Refused> {
    let lock_path = PathBuf::from(
        sidecar
            .to_string_lossy()
            .trim_end_matches(".annotations.json")
            .to_string()
            + ".review.lock",
    );
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Refused::Invalid(anyhow::anyhow!("{}: {e}", lock_path.display())))?;
    // released when `lock` is dropped, also on every error path below
    lock.lock()
        .map_err(|e| Refused::Invalid(anyhow::anyhow!("{}: {e}", lock_path.display())))?;
    if let Some(b) = base {
        let review = load_review(sidecar).map_err(Refused::Invalid)?;
        if review.history.len() != b {
            return Err(Refused::Conflict {
                revision: review.history.len(),
                since: review.history[b.min(review.history.len())..].to_vec(),
            });
        }
    }
    let eff = correct_locked(sidecar, c).map_err(Refused::Invalid)?;
    let revision = load_review(sidecar)
        .map_err(Refused::Invalid)?
        .history
        .len();
    drop(lock);
    Ok((eff, revision))
}

fn correct_locked(sidecar: &Path, mut c: Correction) -> anyhow::Result<Effective> {
    const OUTCOMES: [&str; 4] = ["success", "slip", "drop", "miss"];
    if c.author.trim().is_empty() {
        anyhow::bail!("a correction needs an author");
    }
    if let Some(o) = &c.outcome
        && !OUTCOMES.contains(&o.as_str())
    {
        anyhow::bail!("outcome {o:?} is not one of {}", OUTCOMES.join(", "));
    }
    let auto = load_auto(sidecar)?;
    let mut review = load_review(sidecar)?;
    c.at_ns = hal::sim::now_ns();
    review.history.push(c);
    let eff = effective(&auto, &review)?; // rejects an invalid correction before anything is written
    let p = review_path(sidecar);
    let tmp = p.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&review)?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
    write_human_layer(sidecar, &auto, &review, &eff)?;
    Ok(eff)
}

fn write_human_layer(
    sidecar: &Path,
    auto: &serde_json::Value,
    review: &Review,
    eff: &Effective,
) -> anyhow::Result<()> {
    let start_ns = auto["phases"][0]["start_ns"].as_u64().unwrap_or(0);
    let s = sidecar.to_string_lossy();
    let path = PathBuf::from(
        s.trim_end_matches(".annotations.json").to_string() + ".annotations.human.mcap",
    );
    let tmp = path.with_extension("tmp");
    let (mut w, ch) = crate::label::layer_writer(
        &tmp,
        "human",
        concat!("demotape ", env!("CARGO_PKG_VERSION")),
    )?;
    let last = review.history.last().cloned().unwrap_or_default();
    let prov = format!("{} ({} corrections)", last.author, review.history.len());
    let abs = |t: f64| start_ns + (t.max(0.0) * 1e9) as u64;
    let mut rows: Vec<(String, String, u64, u64, String)> = eff
        .phases
        .iter()
        .map(|(p, a, b)| {
            (
                "phase".to_string(),
                p.clone(),
                abs(*a),
                abs(*b),
                eff.source.to_string(),
            )
        })
        .collect();
    let end = eff.phases.last().map_or(0.0, |p| p.2);
    rows.push((
        "outcome".into(),
        eff.outcome.clone(),
        abs(0.0),
        abs(end),
        last.reason.clone(),
    ));
    for (seq, (kind, label, a, b, ev)) in rows.into_iter().enumerate() {
        let m = Annotation {
            header: Header {
                stamp: Time::from_nanos(a),
                frame_id: String::new(),
            },
            layer: "human".into(),
            kind,
            label,
            start: Time::from_nanos(a),
            end: Time::from_nanos(b),
            confidence: 1.0,
            evidence: ev,
            provenance: prov.clone(),
        };
        w.write_to_known_channel(
            &mcap::records::MessageHeader {
                channel_id: ch,
                sequence: seq as u32,
                log_time: a,
                publish_time: a,
            },
            &m.encode()?,
        )?;
    }
    w.finish()?;
    drop(w);
    std::fs::rename(&tmp, &path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(())
}

/// A row of the review queue.
#[derive(Serialize, Clone, Debug)]
pub struct QueueItem {
    pub sidecar: PathBuf,
    pub outcome: String,
    pub confidence: f64,
    pub failed_gates: Vec<String>,
    pub reviewed: usize,
    /// How far apart the model's nearest reviewed episodes put the boundaries (ms; labelled
    /// by `annotate --model`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disagreement_ms: Option<f64>,
    pub why: String,
    /// The sidecar's outcome figures (for `--order coverage`); empty when it has none.
    #[serde(skip)]
    pub figures: Vec<f64>,
}

impl QueueItem {
    /// How sure the labels are, for ordering: the outcome's confidence, discounted by the
    /// templates' disagreement (halved at 350 ms): where they disagree, a correction teaches
    /// the model a case it does not know.
    pub fn certainty(&self) -> f64 {
        self.confidence * (-self.disagreement_ms.unwrap_or(0.0).max(0.0) / 500.0).exp()
    }
}

/// The order of the review queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Directory order (by file name: recording time).
    #[default]
    File,
    /// What a reviewer should look at first: not reviewed before reviewed; episodes that
    /// could not be annotated, then failed gates, then the least certain labels (lowest
    /// confidence, most disagreement between a model's templates).
    Uncertainty,
    /// What teaches a model the most when few episodes are reviewed: not annotated first,
    /// then each next episode the one least like every episode reviewed or listed before it
    /// (by the sidecars' outcome figures; `learn::select`), so the first few reviews reach
    /// every kind of episode the set holds, rare failures included; reviewed ones last.
    /// Use with --all: the spread is over the episodes listed.
    Coverage,
}

/// Sort `q` in `order` (stable: ties keep directory order).
pub fn sort_queue(q: &mut [QueueItem], order: Order) {
    if order == Order::Coverage {
        let failed: Vec<usize> = (0..q.len()).filter(|&i| q[i].outcome.is_empty()).collect();
        let with: Vec<usize> = (0..q.len())
            .filter(|&i| !q[i].outcome.is_empty() && !q[i].figures.is_empty())
            .collect();
        let without: Vec<usize> = (0..q.len())
            .filter(|&i| !q[i].outcome.is_empty() && q[i].figures.is_empty() && q[i].reviewed == 0)
            .collect();
        let reviewed: Vec<usize> = (0..q.len())
            .filter(|&i| !q[i].outcome.is_empty() && q[i].reviewed > 0)
            .collect();
        // one descriptor length for all (sidecars of one robot configuration agree)
        let len = with.iter().map(|&i| q[i].figures.len()).max().unwrap_or(0);
        let d: Vec<Vec<f64>> = with
            .iter()
            .map(|&i| {
                let mut f = q[i].figures.clone();
                f.resize(len, 0.0);
                f
            })
            .collect();
        let chosen: Vec<usize> = (0..with.len())
            .filter(|&k| q[with[k]].reviewed > 0)
            .collect();
        let spread: Vec<usize> = crate::learn::select::coverage_after(&d, &chosen)
            .into_iter()
            .map(|k| with[k])
            .collect();
        let order: Vec<usize> = failed
            .into_iter()
            .chain(spread)
            .chain(without)
            .chain(reviewed)
            .collect();
        let sorted: Vec<QueueItem> = order.iter().map(|&i| q[i].clone()).collect();
        q.clone_from_slice(&sorted);
        return;
    }
    if order == Order::Uncertainty {
        q.sort_by(|a, b| {
            let key = |i: &QueueItem| {
                (
                    i.reviewed > 0,
                    !i.outcome.is_empty(), // annotation failed: no outcome
                    i.failed_gates.is_empty(),
                )
            };
            key(a)
                .cmp(&key(b))
                .then(a.certainty().total_cmp(&b.certainty()))
        });
    }
}

/// Sidecars under `paths` that need a look: confidence below `below`, or failed gates.
pub fn queue(paths: &[PathBuf], below: f64, all: bool) -> Vec<QueueItem> {
    let mut files = Vec::new();
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        if p.is_dir() {
            if let Ok(rd) = std::fs::read_dir(p) {
                let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
                v.sort();
                for x in v {
                    walk(&x, out);
                }
            }
        } else if p.to_string_lossy().ends_with(".annotations.json")
            || p.to_string_lossy().ends_with(".annotations.failed.json")
        {
            out.push(p.to_path_buf());
        }
    }
    for p in paths {
        walk(p, &mut files);
    }
    let mut out = Vec::new();
    for f in files {
        if f.to_string_lossy().ends_with(".failed.json") {
            // `demotape annotate` could not label it: always a job for a person
            let why = load_auto(&f).map_or_else(
                |e| format!("could not be annotated ({e:#})"),
                |v| {
                    format!(
                        "could not be annotated: {}",
                        v["error"].as_str().unwrap_or("?")
                    )
                },
            );
            out.push(QueueItem {
                sidecar: f,
                outcome: String::new(),
                confidence: 0.0,
                failed_gates: Vec::new(),
                reviewed: 0,
                disagreement_ms: None,
                why,
                figures: Vec::new(),
            });
            continue;
        }
        let Ok(auto) = load_auto(&f) else { continue };
        let conf = auto["confidence"].as_f64().unwrap_or(0.0);
        let failed: Vec<String> = auto["gates"].as_array().map_or(Vec::new(), |g| {
            g.iter()
                .filter(|x| x["pass"] == false)
                .filter_map(|x| x["name"].as_str().map(String::from))
                .collect()
        });
        let reviewed = load_review(&f).map_or(0, |r| r.history.len());
        let disagreement_ms = auto["labeler"]["disagreement_ms"].as_f64();
        let mut why = Vec::new();
        if conf < below {
            why.push(format!("confidence {conf:.2} < {below:.2}"));
        }
        if let Some(d) = disagreement_ms.filter(|d| *d > 250.0) {
            why.push(format!("the model's templates disagree by {d:.0} ms"));
        }
        if !failed.is_empty() {
            why.push(format!("gates failed: {}", failed.join(", ")));
        }
        if why.is_empty() && !all {
            continue;
        }
        let outcome = auto["outcome"].as_str().unwrap_or("").to_string();
        out.push(QueueItem {
            sidecar: f,
            outcome,
            confidence: conf,
            failed_gates: failed,
            reviewed,
            disagreement_ms,
            why: why.join("; "),
            figures: crate::learn::features::OUTCOME_FEATURES
                .iter()
                .take(crate::learn::select::DESCRIPTOR_LEN)
                .map_while(|n| auto["figures"][*n].as_f64())
                .collect(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sidecar(dir: &Path) -> PathBuf {
        let p = dir.join("ep.annotations.json");
        let doc = serde_json::json!({
            "outcome": "success", "confidence": 0.6,
            "gates": [{"name": "drops", "pass": true}],
            "phases": [
                {"phase": "idle", "start_s": 0.0, "end_s": 1.0, "start_ns": 1_000_000_000u64},
                {"phase": "reach", "start_s": 1.0, "end_s": 2.0},
                {"phase": "grasp", "start_s": 2.0, "end_s": 3.0},
                {"phase": "idle", "start_s": 3.0, "end_s": 4.0}
            ]
        });
        std::fs::write(&p, serde_json::to_vec(&doc).unwrap()).unwrap();
        p
    }

    #[test]
    fn uncertainty_order_puts_what_needs_a_person_first() {
        let item =
            |name: &str, outcome: &str, conf: f64, gates: &[&str], reviewed: usize| QueueItem {
                sidecar: PathBuf::from(name),
                outcome: outcome.into(),
                confidence: conf,
                failed_gates: gates.iter().map(|g| g.to_string()).collect(),
                reviewed,
                disagreement_ms: None,
                why: String::new(),
                figures: Vec::new(),
            };
        let mut q = vec![
            item("a", "success", 0.99, &[], 0),
            item("b", "slip", 0.40, &[], 0),
            item("c", "", 0.0, &[], 0),
            item("d", "drop", 0.95, &["drops"], 0),
            item("e", "miss", 0.10, &[], 2),
            item("f", "success", 0.70, &[], 0),
        ];
        sort_queue(&mut q, Order::File);
        assert_eq!(q[0].sidecar, PathBuf::from("a"));
        sort_queue(&mut q, Order::Uncertainty);
        let names: Vec<String> = q.iter().map(|i| i.sidecar.display().to_string()).collect();
        assert_eq!(names, ["c", "d", "b", "f", "a", "e"]);
        // a confident outcome whose boundaries the templates disagree on comes before a less
        // confident one they agree on
        let mut g = item("g", "success", 0.95, &[], 0);
        g.disagreement_ms = Some(600.0);
        let mut q = vec![item("f", "success", 0.70, &[], 0), g];
        sort_queue(&mut q, Order::Uncertainty);
        assert_eq!(
            q[0].sidecar,
            PathBuf::from("g"),
            "0.95·e^-1.2 = 0.29 < 0.70"
        );
    }

    #[test]
    fn coverage_order_reaches_every_kind_of_episode_first() {
        // ten ordinary episodes (held 5 N, little loss), one empty grasp, one lost part, one
        // jolted part; plus one that could not be annotated and one already reviewed
        let item = |name: &str, figures: Vec<f64>, reviewed: usize| QueueItem {
            sidecar: PathBuf::from(name),
            outcome: if figures.is_empty() { "" } else { "success" }.into(),
            confidence: 0.9,
            failed_gates: Vec::new(),
            reviewed,
            disagreement_ms: None,
            why: String::new(),
            figures,
        };
        let mut q: Vec<QueueItem> = (0..10)
            .map(|i| item(&format!("ok{i}"), vec![5.0 + 0.1 * i as f64, 0.3, 0.02], 0))
            .collect();
        q.push(item("empty", vec![0.08, 0.0, 0.0], 0));
        q.push(item("lost", vec![5.0, 0.9, 0.05], 0));
        q.push(item("jolt", vec![5.2, 0.3, 0.3], 0));
        q.push(item("failed", Vec::new(), 0));
        q.push(item("seen", vec![5.4, 0.31, 0.02], 1));
        sort_queue(&mut q, Order::Coverage);
        let names: Vec<String> = q.iter().map(|i| i.sidecar.display().to_string()).collect();
        assert_eq!(names[0], "failed", "{names:?}");
        let mut rare: Vec<&str> = names[1..4].iter().map(String::as_str).collect();
        rare.sort_unstable();
        assert_eq!(rare, ["empty", "jolt", "lost"], "{names:?}");
        assert_eq!(names.last().unwrap(), "seen", "{names:?}");
        assert_eq!(names.len(), 15);
    }

    #[test]
    fn a_stale_revision_is_refused_and_concurrent_writers_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let sc = sidecar(dir.path());
        let c = |who: &str, o: &str| Correction {
            author: who.into(),
            outcome: Some(o.into()),
            ..Default::default()
        };
        let (_, rev) = correct_at(&sc, c("ana", "slip"), Some(0)).unwrap();
        assert_eq!(rev, 1);
        // bob's page still shows revision 0
        match correct_at(&sc, c("bob", "drop"), Some(0)) {
            Err(Refused::Conflict { revision, since }) => {
                assert_eq!(revision, 1);
                assert_eq!(since.len(), 1);
                assert_eq!(since[0].author, "ana");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            load_review(&sc).unwrap().history.len(),
            1,
            "nothing written"
        );
        // eight writers at once: every correction is in the history
        std::thread::scope(|s| {
            for k in 0..8 {
                let sc = &sc;
                s.spawn(move || correct(sc, c(&format!("r{k}"), "miss")).unwrap());
            }
        });
        let h = load_review(&sc).unwrap().history;
        assert_eq!(h.len(), 9);
        for k in 0..8 {
            assert!(h.iter().any(|x| x.author == format!("r{k}")), "r{k} lost");
        }
    }

    #[test]
    fn corrections_override_without_touching_the_automatic_layer() {
        let dir = tempfile::tempdir().unwrap();
        let sc = sidecar(dir.path());
        let before = std::fs::read(&sc).unwrap();
        let c = Correction {
            author: "ana".into(),
            reason: "late grasp".into(),
            outcome: Some("slip".into()),
            moves: BTreeMap::from([("grasp".into(), 2.2), ("idle#2".into(), 3.5)]),
            note: Some("check video".into()),
            ..Default::default()
        };
        let eff = correct(&sc, c).unwrap();
        assert_eq!(eff.outcome, "slip");
        assert_eq!(eff.source, "human");
        assert_eq!(eff.phases[2], ("grasp".into(), 2.2, 3.5));
        assert_eq!(eff.phases[1].2, 2.2);
        assert_eq!(
            std::fs::read(&sc).unwrap(),
            before,
            "the automatic sidecar is never modified"
        );
        assert!(dir.path().join("ep.annotations.human.mcap").exists());
        // an impossible move is rejected and not recorded
        let bad = Correction {
            author: "bob".into(),
            moves: BTreeMap::from([("reach".into(), 2.9)]),
            ..Default::default()
        };
        assert!(
            correct(&sc, bad)
                .unwrap_err()
                .to_string()
                .contains("must stay between")
        );
        assert!(
            correct(
                &sc,
                Correction {
                    author: "".into(),
                    ..Default::default()
                }
            )
            .is_err()
        );
        assert!(
            correct(
                &sc,
                Correction {
                    author: "x".into(),
                    outcome: Some("great".into()),
                    ..Default::default()
                }
            )
            .is_err()
        );
        let r = load_review(&sc).unwrap();
        assert_eq!(r.history.len(), 1);
        assert_eq!(r.history[0].author, "ana");
        // a second correction stacks on the first; history is kept in order
        correct(
            &sc,
            Correction {
                author: "bob".into(),
                outcome: Some("success".into()),
                ..Default::default()
            },
        )
        .unwrap();
        let eff = effective(&load_auto(&sc).unwrap(), &load_review(&sc).unwrap()).unwrap();
        assert_eq!(eff.outcome, "success");
        assert_eq!(eff.phases[2].1, 2.2);
        assert_eq!(load_review(&sc).unwrap().history.len(), 2);
        // the queue flags the low-confidence episode and counts its reviews
        let q = queue(&[dir.path().to_path_buf()], 0.8, false);
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].reviewed, 2);
    }
}

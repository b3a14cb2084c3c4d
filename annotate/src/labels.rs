//! The labels of one episode as every consumer sees them (`export lerobot`, `view`): the
//! human review over the automatic layer (`<stem>.annotations.json` + `<stem>.review.json`),
//! else the operator's outcome from the recording's `demotape.labels` metadata, with the
//! gates' verdict. A layer above `review` and `label`, under the commands.

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Labels of one episode, from the sidecar, the review history and the operator.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Labels {
    pub outcome: Option<String>,
    /// "none", "auto", "operator" or "human".
    pub source: &'static str,
    /// (phase, start, end) in ns on the reference clock.
    pub phases: Vec<(String, u64, u64)>,
    pub gates_pass: Option<bool>,
    pub failed_gates: Vec<String>,
}

/// Read the labels of an episode. `meta` is the episode's metadata.
pub fn load_labels(
    episode: &Path,
    labels_dir: Option<&Path>,
    meta: &BTreeMap<String, BTreeMap<String, String>>,
) -> anyhow::Result<Labels> {
    let mut l = Labels {
        source: "none",
        ..Labels::default()
    };
    let operator = meta
        .get("demotape.labels")
        .and_then(|m| m.get("outcome"))
        .filter(|o| !o.is_empty())
        .cloned();
    let (sidecar, _) = crate::label::outputs(episode, labels_dir);
    if sidecar.exists() {
        let auto = crate::review::load_auto(&sidecar)?;
        let review = crate::review::load_review(&sidecar)?;
        let eff = crate::review::effective(&auto, &review)
            .map_err(|e| anyhow::anyhow!("{}: {e}", sidecar.display()))?;
        // the origin of the sidecar's seconds: its first phase in ns and s
        let p0 = &auto["phases"][0];
        let origin = p0["start_ns"].as_u64().unwrap_or(0) as f64
            - p0["start_s"].as_f64().unwrap_or(0.0) * 1e9;
        let ns = |s: f64| (origin + s * 1e9).round().max(0.0) as u64;
        l.phases = eff
            .phases
            .iter()
            .map(|(p, a, b)| (p.clone(), ns(*a), ns(*b)))
            .collect();
        l.outcome = Some(eff.outcome.clone()).filter(|o| !o.is_empty());
        l.source = if eff.source == "human" {
            "human"
        } else {
            "auto"
        };
        l.gates_pass = auto["pass"].as_bool();
        l.failed_gates = auto["gates"]
            .as_array()
            .map(|g| {
                g.iter()
                    .filter(|g| g["pass"] == false)
                    .map(|g| {
                        format!(
                            "{} ({})",
                            g["name"].as_str().unwrap_or("?"),
                            g["detail"].as_str().unwrap_or("")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
    }
    // An operator's outcome (given at stop) beats the automatic one, not a reviewer's.
    if let Some(o) = operator
        && l.source != "human"
    {
        l.outcome = Some(o);
        l.source = "operator";
    }
    Ok(l)
}

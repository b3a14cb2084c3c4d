//! Offline (non-causal) re-estimation over a whole episode from its recorded clock
//! observations: every sample is mapped with the envelope of a window *centered* on it, so
//! nothing is extrapolated.

use crate::ClockMapper;
use crate::estimator::{EnvelopeClock, EnvelopeConfig};
use crate::hull::{LowerHull, Pt};
use serde::{Deserialize, Serialize};

/// One raw clock observation (as recorded on `/demotape/clock/<device>`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    pub device_us: u64,
    pub host_ns: u64,
    pub boot_id: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OfflineConfig {
    /// Width of the centered window (s). Longer windows see more fast samples (sparse or noisy
    /// links need that); drift changes bend the envelope over long windows.
    pub window_s: f64,
    /// Samples within one block share one supporting line (s).
    pub block_s: f64,
    /// Used to find segments (reboots, steps, wraps) exactly as the online estimator does.
    pub online: EnvelopeConfig,
}

impl Default for OfflineConfig {
    fn default() -> Self {
        OfflineConfig {
            window_s: 20.0,
            block_s: 0.25,
            online: EnvelopeConfig::default(),
        }
    }
}

/// Map every observation's device stamp to the reference clock (ns), using all of the data.
/// The result is in the same order as `obs`.
pub fn reestimate(obs: &[Observation], cfg: &OfflineConfig) -> Vec<u64> {
    // 1. Segments (boots, restarts, steps), found by the online estimator's rules; its
    //    causal result is the fallback for anything the offline pass cannot improve.
    let mut online = EnvelopeClock::new(cfg.online.clone());
    let mut seg = vec![0u64; obs.len()];
    let mut out = Vec::with_capacity(obs.len());
    for (i, o) in obs.iter().enumerate() {
        out.push(online.observe(o.device_us, o.host_ns, o.boot_id));
        let s = online.segment();
        let from = i.saturating_sub(online.replayed().saturating_sub(1));
        seg[from..i].fill(s);
        seg[i] = s;
    }
    // 2. Per segment (in arrival order within it): unwrap, then a centered-window envelope.
    let mut groups: std::collections::BTreeMap<u64, Vec<usize>> = std::collections::BTreeMap::new();
    for (i, s) in seg.iter().enumerate() {
        groups.entry(*s).or_default().push(i);
    }
    for idx in groups.values() {
        let mut unwrap = crate::estimator::Unwrap::default();
        let c: Vec<i128> = idx
            .iter()
            .map(|&i| {
                unwrap
                    .step(obs[i].device_us, cfg.online.counter_bits, u64::MAX)
                    .unwrap_or(obs[i].device_us as i128)
            })
            .collect();
        map_segment(obs, idx, &c, cfg, &mut out);
    }
    out
}

fn map_segment(
    obs: &[Observation],
    idx: &[usize],
    c: &[i128],
    cfg: &OfflineConfig,
    out: &mut [u64],
) {
    if idx.is_empty() {
        return;
    }
    let c0 = c[0];
    let o0 = obs[idx[0]].host_ns as i128 - c0 * 1000;
    // order by device time
    let mut order: Vec<usize> = (0..idx.len()).collect();
    order.sort_by_key(|&k| c[k]);
    let pts: Vec<Pt> = order
        .iter()
        .map(|&k| Pt {
            x: (c[k] - c0) as f64,
            y: (obs[idx[k]].host_ns as i128 - c[k] * 1000 - o0) as f64,
        })
        .collect();
    let (xmin, xmax) = (pts[0].x, pts[pts.len() - 1].x);
    let half = cfg.window_s * 1e6 / 2.0;
    let block = (cfg.block_s * 1e6).max(1.0);
    let (mut lo, mut hi) = (0usize, 0usize);
    let mut k = 0usize; // next point to assign
    let mut xc = xmin + block / 2.0;
    while k < pts.len() {
        let bend = xc + block / 2.0;
        while lo < pts.len() && pts[lo].x < xc - half {
            lo += 1;
        }
        while hi < pts.len() && pts[hi].x <= xc + half {
            hi += 1;
        }
        let mut h = LowerHull::new(usize::MAX / 2);
        for p in &pts[lo..hi] {
            h.push(*p);
        }
        let eval = xc.clamp(xmin, xmax);
        let mle = h.support_at(h.centroid_x()).map(|(l, _, _)| l);
        let mut line = h.support_at(eval).map(|(l, _, _)| l);
        if cfg.online.posterior
            && let Some(m) = mle
            && hi > lo + 20
        {
            // delay scale from the window's residuals above the maximum-likelihood line
            let mut r: Vec<f64> = pts[lo..hi]
                .iter()
                .map(|p| (p.y - m.at(p.x)).max(0.0))
                .collect();
            let mid = r.len() / 2;
            let median = *r.select_nth_unstable_by(mid, f64::total_cmp).1;
            let mean_delay = (median / std::f64::consts::LN_2).max(1.0);
            if let Some(p) = h.posterior_at(h.centroid_x(), (hi - lo) as f64 / mean_delay, eval) {
                line = Some(p);
            }
        }
        while k < pts.len() && (pts[k].x < bend || xc > xmax) {
            if let Some(l) = line {
                let j = order[k];
                // never later than the receive time
                let host = obs[idx[j]].host_ns as i128;
                out[idx[j]] =
                    (c[j] * 1000 + o0 + l.at(pts[k].x).round() as i128).clamp(0, host) as u64;
            }
            k += 1;
        }
        xc += block;
    }
}

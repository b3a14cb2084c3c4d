//! Offline re-timing audit: re-estimate every device's clock over the whole episode from the
//! raw observations on `/demotape/clock/<device>` (non-causal, `sync::offline`), and compare
//! with the times the recorder assigned online. Large differences flag an episode whose live
//! synchronization struggled (too few fast samples, a drift change, a missed step).

use hal::msgs::ClockObservations;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use sync::offline::{Observation, OfflineConfig, reestimate};

/// How far the online stamps of one device are from the offline re-estimate.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ResyncStat {
    pub samples: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

/// One device's clock data: its observations, the times the recorder assigned online, and
/// the offline re-estimate of the same samples' event times, all in observation order.
#[derive(Clone, Debug, Default)]
pub struct DeviceTimes {
    pub observations: Vec<Observation>,
    pub online_ns: Vec<u64>,
    pub offline_ns: Vec<u64>,
}

/// Offline re-estimation of every device in `path`, keyed by device.
pub fn offline_times(path: &Path) -> anyhow::Result<BTreeMap<String, DeviceTimes>> {
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    // per device: observations, online times, event stamps
    let mut per: BTreeMap<String, DeviceTimes> = BTreeMap::new();
    let mut events: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let stream =
        mcap::MessageStream::new(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    for m in stream {
        let m = match m {
            Ok(m) => m,
            Err(e) => anyhow::bail!(
                "{}: {e} (run `demotape inspect` without --resync for details)",
                path.display()
            ),
        };
        if !m.channel.topic.starts_with("/demotape/clock/") || m.data.len() < 4 {
            continue;
        }
        // checked decoding: every length against the remaining input
        let Ok(c) = hal::msgs::decode::<ClockObservations>(&m.data) else {
            anyhow::bail!(
                "{}: undecodable clock observations on {}",
                path.display(),
                m.channel.topic
            );
        };
        let n = c.device_stamp_us.len();
        if [
            c.host_receive_ns.len(),
            c.mapped_ns.len(),
            c.event_stamp_us.len(),
        ]
        .iter()
        .any(|&l| l != n)
        {
            anyhow::bail!(
                "{}: inconsistent clock observations on {}",
                path.display(),
                m.channel.topic
            );
        }
        let e = per.entry(c.device.clone()).or_default();
        let ev = events.entry(c.device.clone()).or_default();
        for i in 0..n {
            e.observations.push(Observation {
                device_us: c.device_stamp_us[i],
                host_ns: c.host_receive_ns[i],
                boot_id: c.boot_id,
            });
            e.online_ns.push(c.mapped_ns[i]);
            ev.push(c.event_stamp_us[i]);
        }
    }
    for (dev, t) in per.iter_mut() {
        // fitted on the stamps the device sent (transmit where it has one); event stamps are
        // milliseconds earlier on the same clock, where drift is negligible (< 0.1 µs)
        let ev = &events[dev];
        t.offline_ns = reestimate(&t.observations, &OfflineConfig::default())
            .into_iter()
            .zip(t.observations.iter().zip(ev))
            .map(|(m, (o, e))| m.saturating_sub(o.device_us.saturating_sub(*e) * 1000))
            .collect();
    }
    Ok(per)
}

/// Per device: |online − offline| statistics (µs).
pub fn audit(path: &Path) -> anyhow::Result<BTreeMap<String, ResyncStat>> {
    let mut out = BTreeMap::new();
    for (dev, t) in offline_times(path)? {
        let (online, offline) = (t.online_ns, t.offline_ns);
        let mut d: Vec<f64> = online
            .iter()
            .zip(&offline)
            .map(|(a, b)| (*a as f64 - *b as f64).abs() / 1e3)
            .collect();
        d.sort_by(f64::total_cmp);
        let q = |p: f64| {
            if d.is_empty() {
                0.0
            } else {
                d[((d.len() - 1) as f64 * p).round() as usize]
            }
        };
        out.insert(
            dev,
            ResyncStat {
                samples: d.len(),
                p50_us: q(0.5),
                p99_us: q(0.99),
                max_us: d.last().copied().unwrap_or(0.0),
            },
        );
    }
    Ok(out)
}

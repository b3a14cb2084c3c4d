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

/// Offline re-estimation of every device in `path`, keyed by device: the observations, the
/// recorded (online) times and the offline times of the samples' events, in order.
pub fn offline_times(
    path: &Path,
) -> anyhow::Result<BTreeMap<String, (Vec<Observation>, Vec<u64>, Vec<u64>)>> {
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut per: BTreeMap<String, (Vec<Observation>, Vec<u64>, Vec<u64>)> = BTreeMap::new();
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
        let Ok((c, _)) =
            cdr_encoding::from_bytes::<ClockObservations, byteorder::LittleEndian>(&m.data[4..])
        else {
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
        for i in 0..n {
            e.0.push(Observation {
                device_us: c.device_stamp_us[i],
                host_ns: c.host_receive_ns[i],
                boot_id: c.boot_id,
            });
            e.1.push(c.mapped_ns[i]);
            e.2.push(c.event_stamp_us[i]);
        }
    }
    Ok(per
        .into_iter()
        .map(|(d, (obs, online, event))| {
            // fitted on the stamps the device sent (transmit where it has one); event stamps
            // are milliseconds earlier on the same clock, where drift is negligible (< 0.1 µs)
            let off: Vec<u64> = reestimate(&obs, &OfflineConfig::default())
                .into_iter()
                .zip(obs.iter().zip(&event))
                .map(|(t, (o, e))| t.saturating_sub(o.device_us.saturating_sub(*e) * 1000))
                .collect();
            (d, (obs, online, off))
        })
        .collect())
}

/// Per device: |online − offline| statistics (µs).
pub fn audit(path: &Path) -> anyhow::Result<BTreeMap<String, ResyncStat>> {
    let mut out = BTreeMap::new();
    for (dev, (_, online, offline)) in offline_times(path)? {
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

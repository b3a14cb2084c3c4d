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
    /// How the recorder timed the device (`demotape.sync`): `lower-envelope` (re-estimated
    /// here over the whole episode), `ptp` (its stamps are the reference: compared as they
    /// are), `ptp-fault-envelope` (a PTP claim that failed: re-estimated like any clock).
    pub method: String,
    /// A triggered camera: its frames carry their pulses' times (the board's clock is audited
    /// on its own line); this line compares the camera's own clock fit, which unmatched
    /// frames fell back to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
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
    /// The samples' event stamps (µs, the device's clock).
    pub events_us: Vec<u64>,
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
        t.events_us = ev.clone();
        t.offline_ns = reestimate(&t.observations, &OfflineConfig::default())
            .into_iter()
            .zip(t.observations.iter().zip(ev))
            .map(|(m, (o, e))| m.saturating_sub(o.device_us.saturating_sub(*e) * 1000))
            .collect();
    }
    Ok(per)
}

/// Per device: |online − offline| statistics (µs). `sync` is the file's `demotape.sync`
/// record (device → report JSON), which says how each device was timed.
pub fn audit(
    path: &Path,
    sync: Option<&BTreeMap<String, String>>,
) -> anyhow::Result<BTreeMap<String, ResyncStat>> {
    let mut out = BTreeMap::new();
    let report =
        |dev: &str| -> Option<sync::SyncReport> { serde_json::from_str(sync?.get(dev)?).ok() };
    for (dev, t) in offline_times(path)? {
        let r = report(&dev);
        let method = r
            .as_ref()
            .map_or("lower-envelope".to_string(), |r| r.method.clone());
        let note = r.as_ref().and_then(|r| r.trigger.as_ref()).map(|t| {
            format!(
                "frames stamped from the pulses on {} ({} of {} matched); compared here: the camera's own clock",
                t.pulses_topic,
                t.stats.matched,
                t.stats.matched + t.stats.unmatched
            )
        });
        let online = t.online_ns;
        // a PTP device whose claim held: its stamps are the reference, offline as online
        let offline = match r.as_ref().and_then(|r| r.ptp.as_ref()) {
            Some(p) if method == "ptp" => {
                let shift: i128 = match p.timescale {
                    sync::ptp::Timescale::Utc => 0,
                    sync::ptp::Timescale::Tai => sync::ptp::TAI_MINUS_UTC_S as i128 * 1_000_000_000,
                };
                t.events_us
                    .iter()
                    .map(|e| (*e as i128 * 1000 - shift).max(0) as u64)
                    .collect()
            }
            _ => t.offline_ns,
        };
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
                method,
                note,
                samples: d.len(),
                p50_us: q(0.5),
                p99_us: q(0.99),
                max_us: d.last().copied().unwrap_or(0.0),
            },
        );
    }
    Ok(out)
}

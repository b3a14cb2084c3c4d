//! Clock-domain estimation and stream alignment. Pure: no I/O, no threads, bounded memory.
//!
//! Every device stamps samples with its own counter; the host sees each sample after a
//! one-sided random transport delay. Plotting offset = host receive − device stamp against
//! device time, every observation lies *above* the line "true offset + minimum latency": the
//! delay only ever adds. So the line is found from the lower convex hull of the points (as in
//! TICSync and Moon et al.), not by least squares, which is biased by the mean delay.
//!
//! - [`EnvelopeClock`]: the online estimator. Offset and drift from the supporting line of the
//!   lower hull, with two overlapping hulls (each lives `window_s`, a new one starts every
//!   half window) so memory is bounded and slowly changing drift is followed. Counter
//!   wrap-around, reboots (boot id change), counter restarts and clock steps (points far below
//!   the envelope, confirmed by several in a row) start a new segment. Late outliers lie above
//!   the envelope and cannot disturb it. Event stamps are translated with
//!   [`ClockMapper::map`] after fitting on transmit stamps with [`ClockMapper::observe`].
//! - [`offline::reestimate`]: non-causal re-timing of a recorded episode, each sample mapped with
//!   a window centered on it.
//! - [`trigger::TriggerMatcher`]: camera frames to hardware trigger pulses, with a verified lock.
//! - [`ptp::PtpClock`]: devices stamping in PTP time, taken as they stamp while their claim
//!   holds, flagged (and fitted) when it does not.
//! - [`align`]: sampling streams at given times, and `ApproximateTime`-style grouping.
//! - [`scenarios`]: the loads.md clock scenarios and the baselines, for the benchmark.
//!
//! ## Measured (`cargo bench -p demotape-sync --bench scenarios`, 40 seeded trials each)
//!
//! Error = |estimate − (true capture + minimum latency)| at t = 10–11 s after the device
//! appears (L: 10–300 s, except the 2 s after the reboot), µs, p50 / p99:
//!
//! | id | naive receive | least squares | ours online | ours offline | target (online p99) |
//! |----|---------------|---------------|-------------|--------------|---------------------|
//! | A  | 697 / 4619    | 1003 / 1043   | 0.26 / 0.51 | 0.00 / 0.26  | 20                  |
//! | B  | 691 / 4590    | 1008 / 1146   | 2.05 / 12.0 | 0.51 / 3.58  | 20                  |
//! | C  | 2522 / 4949   | 2508 / 2570   | 0.77 / 3.58 | 0.26 / 1.79  | 150                 |
//! | E  | 1707 / 14274  | 2821 / 3346   | 5.12 / 23.0 | 1.28 / 9.22  | 20 (missed by 3 µs) |
//! | F  | 278 / 2604    | 717 / 878     | 3.58 / 10.2 | 2.30 / 4.10  | 20                  |
//! | F* | 282 / 20976   | 717 / 886     | 3.84 / 72.7 | 2.05 / 71.7  | (worst case, below) |
//! | L  | 694 / 4601    | 1028 / 1139   | 0.51 / 2.05 | 1.79 / 2.82  | 30                  |
//!
//! Scenario T, a hardware-triggered 30 Hz camera (frames delivered 0.5–8 ms after exposure,
//! 1 % of frames and 0.1 % of pulses lost; the trigger board reports each pulse and sends a
//! heartbeat every 5 ms): error against the true exposure start plus the board's minimum
//! latency, µs, p50 / p99, 40 trials:
//!
//! | id       | receive stamp | camera counter (fitted) | trigger-matched       | as recorded |
//! |----------|---------------|-------------------------|-----------------------|-------------|
//! | T        | 4057 / 7774   | 349 / 774               | 0.26 / 1.02 (max 2.0) | 0.26 / 1.02 |
//! | T-usb    | 4110 / 7772   | 347 / 826               | 6.66 / 29.7           | 6.66 / 30.0 |
//! | T-sparse | 4057 / 7774   | 349 / 774               | 0.51 / 2.30 (max 6.1) | 0.51 / 2.30 |
//!
//! In T the board sits on a UART or interrupt link (exponential delay, mean 50 µs); in T-usb
//! behind USB bulk transfers (a wait for the next 125 µs microframe): the microframe phase is
//! barely seen, and the board's clock fit, which every matched frame inherits, floors there.
//! T-sparse sends heartbeats only every 100 ms. "As recorded" is every delivered frame
//! (matched, else its own counter). Every skipped frame and missing pulse was reported
//! (242/242 and 20/20 in T), none misassigned.
//!
//! Online cost: ~340 ns per observation (median), flat over a 300 s run; at most 18 hull
//! vertices were ever kept. F models the microframe wait as uniform per message; F* is the
//! worst case where delivery sits exactly on the host's 125 µs grid with no jitter: when the
//! device clock is within a few ppm of the bus clock the frame phase never slides in 20 s and
//! the quantization (up to 125 µs) cannot be seen in one-way data by any method.
//!
//! Error is measured relative to each device's minimum latency, which one-way messages
//! cannot reveal. Mapped times are never later than the receive time.

pub mod align;
pub mod estimator;
pub mod hull;
pub mod offline;
pub mod ptp;
pub mod scenarios;
pub mod trigger;

pub use estimator::{EnvelopeClock, EnvelopeConfig, ResetReason};

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Maps one device's stamps onto the reference clock, online.
pub trait ClockMapper {
    /// Feed one observation (device transmit stamp in µs, host receive time in ns); returns
    /// that sample's time on the reference clock (ns).
    fn observe(&mut self, device_stamp_us: u64, host_receive_ns: u64, boot_id: u64) -> u64;
    /// Map another stamp of the same device (e.g. an event stamp) with the current estimate.
    fn map(&self, device_stamp_us: u64) -> Option<u64>;
    /// Quality report so far.
    fn report(&self) -> SyncReport;
}

/// Per-device synchronization quality, written into every episode.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(default)]
pub struct SyncReport {
    pub method: String,
    pub samples: u64,
    /// Segments started over: reboots, counter restarts, clock steps.
    pub resets: u64,
    /// Current offset: reference ns − device µs × 1000.
    pub offset_ns: i64,
    /// Estimated drift (ppm, positive = device clock fast).
    pub drift_ppm: f64,
    /// Median and 99th percentile of the observations' height above the envelope (µs): the
    /// transport delay beyond the fastest one.
    pub residual_median_us: f64,
    pub residual_p99_us: f64,
    /// How much the current estimate would move with the neighboring hull edge (µs).
    pub uncertainty_us: f64,
    pub hull_vertices: u64,
    /// A PTP-stamped device ([`ptp::PtpClock`]): whether its claim held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ptp: Option<ptp::PtpReport>,
    /// A hardware-triggered camera: how its frames matched the trigger pulses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<trigger::TriggerReport>,
}

/// Baseline: lower-envelope offset only, over a sliding window of host time (no drift
/// model). Kept as a simple reference; [`EnvelopeClock`] is what the recorder uses.
#[derive(Clone, Debug)]
pub struct WindowMinOffset {
    window_ns: u64,
    /// (host ns, offset) with increasing offsets: the front is the window minimum.
    deque: VecDeque<(u64, i128)>,
    boot_id: Option<u64>,
    samples: u64,
    resets: u64,
    start_host: Option<u64>,
    first: Option<(u64, i128)>,
    last_min: Option<(u64, i128)>,
    /// Residual histogram in 10 µs bins up to 100 ms (bounded memory for the median).
    hist: Vec<u64>,
}

impl WindowMinOffset {
    pub fn new(window_ns: u64) -> Self {
        WindowMinOffset {
            window_ns,
            deque: VecDeque::new(),
            boot_id: None,
            samples: 0,
            resets: 0,
            start_host: None,
            first: None,
            last_min: None,
            hist: vec![0; 10_001],
        }
    }

    fn reset(&mut self) {
        self.deque.clear();
        self.first = None;
        self.start_host = None;
        self.resets += 1;
    }
}

impl Default for WindowMinOffset {
    fn default() -> Self {
        Self::new(2_000_000_000)
    }
}

impl ClockMapper for WindowMinOffset {
    fn map(&self, device_stamp_us: u64) -> Option<u64> {
        let min = self.deque.front()?.1;
        Some((device_stamp_us as i128 * 1000 + min).clamp(0, u64::MAX as i128) as u64)
    }

    fn observe(&mut self, device_stamp_us: u64, host_receive_ns: u64, boot_id: u64) -> u64 {
        let dev_ns = device_stamp_us as i128 * 1000;
        let off = host_receive_ns as i128 - dev_ns;
        if self.boot_id.is_some_and(|b| b != boot_id) {
            self.reset();
        } else if let Some(&(_, m)) = self.deque.front() {
            // A jump of more than a second either way is a clock step, not delay.
            if off < m - 1_000_000_000 || off > m + 1_000_000_000 {
                self.reset();
            }
        }
        self.boot_id = Some(boot_id);
        self.samples += 1;
        while self.deque.back().is_some_and(|&(_, o)| o >= off) {
            self.deque.pop_back();
        }
        self.deque.push_back((host_receive_ns, off));
        while self
            .deque
            .front()
            .is_some_and(|&(h, _)| h + self.window_ns < host_receive_ns)
        {
            self.deque.pop_front();
        }
        let min = self.deque.front().map(|&(_, o)| o).unwrap_or(off);
        let now = (host_receive_ns, min);
        // The drift reference is the envelope after the first full window (a younger
        // envelope is still biased by delay).
        match self.start_host {
            None => self.start_host = Some(host_receive_ns),
            Some(s) if self.first.is_none() && host_receive_ns >= s + self.window_ns => {
                self.first = Some(now)
            }
            _ => {}
        }
        self.last_min = Some(now);
        let bin = (((off - min) / 10_000).clamp(0, 10_000)) as usize;
        self.hist[bin] += 1;
        (dev_ns + min).clamp(0, u64::MAX as i128) as u64
    }

    fn report(&self) -> SyncReport {
        let drift_ppm = match (self.first, self.last_min) {
            (Some((h0, o0)), Some((h1, o1))) if h1 > h0 + 1_000_000_000 => {
                // offset(t) = host - dev; d(offset)/dt = -drift (device fast => offset falls)
                -((o1 - o0) as f64) / ((h1 - h0) as f64) * 1e6
            }
            _ => 0.0,
        };
        let total: u64 = self.hist.iter().sum();
        let mut acc = 0;
        let mut median = 0.0;
        for (i, c) in self.hist.iter().enumerate() {
            acc += c;
            if acc * 2 >= total && total > 0 {
                median = i as f64 * 10.0;
                break;
            }
        }
        SyncReport {
            method: "window-min-offset".into(),
            samples: self.samples,
            resets: self.resets,
            offset_ns: self.last_min.map(|(_, o)| o as i64).unwrap_or(0),
            drift_ppm,
            residual_median_us: median,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_distr::{Distribution, Exp};

    /// Simulate a device at 1 kHz with drift and exponential delay; return p99 error (ns)
    /// of the estimator and of naive receive stamps, after the first second.
    fn run(drift_ppm: f64, seed: u64) -> (f64, f64) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let exp = Exp::new(1.0 / 1_000_000.0).unwrap();
        let mut est = WindowMinOffset::default();
        let boot = 1_000_000_000_000_000i128;
        let mut errs = Vec::new();
        let mut naive = Vec::new();
        for k in 0..10_000u64 {
            let t = 1_700_000_000_000_000_000u64 + k * 1_000_000;
            let dev_us = ((t as i128 - boot) as f64 * (1.0 + drift_ppm * 1e-6) / 1000.0) as u64;
            let host = t + 100_000 + exp.sample(&mut rng) as u64;
            let m = est.observe(dev_us, host, 7);
            if k > 1000 {
                // error relative to the minimum latency (100 µs), which one-way data cannot see
                errs.push(((m as i128 - t as i128 - 100_000) as f64).abs());
                naive.push((host as i128 - t as i128 - 100_000) as f64);
            }
        }
        let p99 = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() * 99 / 100]
        };
        let _ = rng.r#gen::<u8>();
        (p99(&mut errs), p99(&mut naive))
    }

    #[test]
    fn beats_naive_receive_stamps() {
        for (i, drift) in [-100.0, 0.0, 37.0, 100.0].into_iter().enumerate() {
            let (ours, naive) = run(drift, i as u64);
            assert!(ours < 400_000.0, "drift {drift}: p99 {ours} ns");
            assert!(
                ours * 5.0 < naive,
                "drift {drift}: ours {ours} naive {naive}"
            );
        }
    }

    #[test]
    fn reports_drift_and_resets() {
        let mut est = WindowMinOffset::default();
        for k in 0..5000u64 {
            let t = k * 1_000_000;
            // device runs 50 ppm fast, zero delay
            let dev_us = (t as f64 * (1.0 + 50e-6) / 1000.0) as u64 + 1_000_000;
            est.observe(dev_us, t + 2_000_000_000, 1);
        }
        let r = est.report();
        assert!((r.drift_ppm - 50.0).abs() < 2.0, "{r:?}");
        assert_eq!(r.resets, 0);
        est.observe(5, 5_000_000_000_000, 2);
        assert_eq!(est.report().resets, 1);
        assert_eq!(est.report().samples, 5001);
    }
}

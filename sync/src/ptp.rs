//! Devices that stamp in PTP time (IEEE 1588): LiDARs, industrial cameras, many force-torque
//! sensors. Their stamps are already on the reference clock — the host's `CLOCK_REALTIME`,
//! disciplined by `ptp4l`/`phc2sys` — up to the PTP servo's error, so they are taken as they
//! are (after the timescale: PTP's own is TAI, 37 s ahead of UTC).
//!
//! Taking a device's word for it is only safe while it holds. [`PtpClock`] fits the same
//! lower envelope as every other device beside it ([`EnvelopeClock`], on the same
//! observations) and checks the claim: a locked device's stamps keep a constant offset to the
//! host (the link's minimum latency), drift ≈ 0, and never come later than the host received
//! them by more than the servo error. A device that fails one of these is flagged with the
//! measured figures (`PtpReport::fault`), and from then on its samples are mapped by the
//! fitted envelope like any free-running clock — loudly, never silently.

use crate::{ClockMapper, EnvelopeClock, SyncReport};
use serde::{Deserialize, Serialize};

/// Which time a device's PTP stamps count.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Timescale {
    /// Already UTC (the device or its driver applied the UTC offset), like `CLOCK_REALTIME`.
    #[default]
    Utc,
    /// PTP's own timescale: TAI, ahead of UTC by the leap seconds ([`TAI_MINUS_UTC_S`]).
    Tai,
}

/// TAI − UTC since 2017-01-01 (no leap second has been scheduled since).
pub const TAI_MINUS_UTC_S: i64 = 37;

/// What a PTP-stamped device promises, and how much evidence a fault needs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PtpConfig {
    pub timescale: Timescale,
    /// Largest error of the device's PTP servo plus the host's (`ptp4l` + `phc2sys`), µs:
    /// hardware timestamping keeps well under 1 µs, software timestamping tens of µs.
    pub servo_error_us: f64,
    /// A fitted drift beyond this (ppm) against the host is a device that is not locked.
    pub max_drift_ppm: f64,
    /// Seconds of observations before drift is judged (a short fit's slope is noise).
    pub judge_after_s: f64,
    /// Largest plausible delay from a stamp to its arrival (µs): stamps further behind the
    /// host than this are on another timescale or clock.
    pub max_offset_us: f64,
}

impl Default for PtpConfig {
    fn default() -> Self {
        PtpConfig {
            timescale: Timescale::Utc,
            servo_error_us: 10.0,
            max_drift_ppm: 5.0,
            judge_after_s: 2.0,
            max_offset_us: 100_000.0,
        }
    }
}

/// The PTP part of a device's [`SyncReport`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(default)]
pub struct PtpReport {
    pub timescale: Timescale,
    pub servo_error_us: f64,
    /// `locked` (stamps used as they are) or `fault` (flagged; mapped by the envelope since).
    pub status: String,
    /// Why it was flagged, with the measured figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// Host receive time (ns) of the observation that raised the fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault_at_ns: Option<u64>,
    /// Range (µs) of the fitted host − stamp offset over the run: the servo's wander plus
    /// the fit's own uncertainty. At most about twice the servo error for a locked device.
    pub offset_span_us: f64,
    /// Largest amount (µs) by which a stamp came later than its own arrival.
    pub max_ahead_us: f64,
}

/// A PTP-stamped device: stamps taken as they are while the claim holds (see the module).
#[derive(Clone, Debug)]
pub struct PtpClock {
    cfg: PtpConfig,
    env: EnvelopeClock,
    first_host_ns: Option<u64>,
    offset_range: Option<(i64, i64)>,
    report: PtpReport,
}

impl PtpClock {
    pub fn new(cfg: PtpConfig) -> Self {
        PtpClock {
            report: PtpReport {
                timescale: cfg.timescale,
                servo_error_us: cfg.servo_error_us,
                status: "locked".into(),
                ..Default::default()
            },
            cfg,
            env: EnvelopeClock::default(),
            first_host_ns: None,
            offset_range: None,
        }
    }

    fn shift_ns(&self) -> i128 {
        match self.cfg.timescale {
            Timescale::Utc => 0,
            Timescale::Tai => TAI_MINUS_UTC_S as i128 * 1_000_000_000,
        }
    }

    /// The stamp as reference time, trusting the device.
    fn as_reference(&self, device_stamp_us: u64) -> u64 {
        (device_stamp_us as i128 * 1000 - self.shift_ns()).clamp(0, u64::MAX as i128) as u64
    }

    pub fn faulted(&self) -> bool {
        self.report.fault.is_some()
    }

    /// The envelope fitted beside the claim.
    pub fn envelope(&self) -> &EnvelopeClock {
        &self.env
    }

    pub fn ptp_report(&self) -> &PtpReport {
        &self.report
    }

    fn flag(&mut self, why: String, at: u64) {
        if self.report.fault.is_none() {
            self.report.fault = Some(why);
            self.report.fault_at_ns = Some(at);
            self.report.status = "fault".into();
        }
    }

    fn check(&mut self, stamp_ns: u64, host_receive_ns: u64) {
        let ahead_us = (stamp_ns as f64 - host_receive_ns as f64) / 1e3;
        self.report.max_ahead_us = self.report.max_ahead_us.max(ahead_us);
        // the stamp resolution (1 µs) on top of the servo's error
        let tai = |us: f64| {
            if (us / 1e6 - TAI_MINUS_UTC_S as f64).abs() < 1.0 {
                " (TAI? set timescale = \"tai\")"
            } else if (us / 1e6 + TAI_MINUS_UTC_S as f64).abs() < 1.0 {
                " (UTC? set timescale = \"utc\")"
            } else {
                ""
            }
        };
        if ahead_us > self.cfg.servo_error_us + 1.0 {
            self.flag(
                format!(
                    "a stamp came {ahead_us:.1} µs after its own arrival (servo error {} µs): \
                     the device is not on the host's PTP time{}",
                    self.cfg.servo_error_us,
                    tai(ahead_us)
                ),
                host_receive_ns,
            );
        }
        let behind_us = -ahead_us;
        if behind_us > self.cfg.max_offset_us {
            let hint = tai(ahead_us);
            self.flag(
                format!(
                    "stamps are {:.6} s behind the host, beyond the {} µs a transport takes{hint}",
                    behind_us / 1e6,
                    self.cfg.max_offset_us
                ),
                host_receive_ns,
            );
        }
        let first = *self.first_host_ns.get_or_insert(host_receive_ns);
        let r = self.env.report();
        if host_receive_ns.saturating_sub(first) as f64 >= self.cfg.judge_after_s * 1e9 {
            let (lo, hi) = self.offset_range.unwrap_or((r.offset_ns, r.offset_ns));
            self.offset_range = Some((lo.min(r.offset_ns), hi.max(r.offset_ns)));
            if let Some((lo, hi)) = self.offset_range {
                self.report.offset_span_us = (hi - lo) as f64 / 1e3;
            }
            if r.drift_ppm.abs() > self.cfg.max_drift_ppm {
                self.flag(
                    format!(
                        "drifts {:+.1} ppm against the host clock (at most {} ppm for a PTP-locked \
                         device): not locked",
                        r.drift_ppm, self.cfg.max_drift_ppm
                    ),
                    host_receive_ns,
                );
            }
        }
    }
}

impl ClockMapper for PtpClock {
    fn observe(&mut self, device_stamp_us: u64, host_receive_ns: u64, boot_id: u64) -> u64 {
        // the envelope sees the stamps on the reference timescale, so its offset is the
        // transport latency (plus the servo's error), not 37 s
        let stamp_ns = self.as_reference(device_stamp_us);
        let fitted = self.env.observe(stamp_ns / 1000, host_receive_ns, boot_id);
        self.check(stamp_ns, host_receive_ns);
        if self.faulted() { fitted } else { stamp_ns }
    }

    fn map(&self, device_stamp_us: u64) -> Option<u64> {
        let stamp_ns = self.as_reference(device_stamp_us);
        if self.faulted() {
            self.env.map(stamp_ns / 1000)
        } else {
            Some(stamp_ns)
        }
    }

    fn report(&self) -> SyncReport {
        let mut r = self.env.report();
        r.method = if self.faulted() {
            "ptp-fault-envelope".into()
        } else {
            "ptp".into()
        };
        r.ptp = Some(self.report.clone());
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1 kHz device stamping `t + wander(t) + drift·t`, arriving 200 µs + jitter later.
    fn run(cfg: PtpConfig, drift_ppm: f64, tai: bool) -> (PtpClock, f64) {
        let mut c = PtpClock::new(cfg);
        let t0 = 1_790_000_000_000_000_000u64;
        let mut worst: f64 = 0.0;
        for k in 0..10_000u64 {
            let dt = k * 1_000_000;
            let t = t0 + dt;
            let wander = 800.0 * (dt as f64 / 7e9 * std::f64::consts::TAU).sin();
            let stamp_ns = t as f64 + wander + drift_ppm * 1e-6 * dt as f64;
            let shift = if tai { 37e9 } else { 0.0 };
            let stamp_us = ((stamp_ns + shift) / 1e3) as u64;
            let host = t + 200_000 + (k * 7919 % 300) * 1000;
            let m = c.observe(stamp_us, host, 1);
            if k > 3000 {
                worst = worst.max((m as f64 - t as f64).abs());
            }
        }
        (c, worst)
    }

    #[test]
    fn a_locked_device_is_taken_as_it_stamps() {
        let (c, worst) = run(PtpConfig::default(), 0.0, false);
        let r = c.report();
        assert_eq!(r.method, "ptp", "{r:?}");
        let p = r.ptp.expect("ptp report");
        assert_eq!(p.status, "locked");
        assert!(p.fault.is_none());
        // stamps are used as they are: error = the servo wander (≤ 0.8 µs) + 1 µs truncation
        assert!(worst <= 1_800.0, "worst {worst} ns");
        assert!(r.drift_ppm.abs() < 1.0, "{}", r.drift_ppm);
        assert!(p.offset_span_us < 2.0 * 10.0, "{}", p.offset_span_us);
    }

    #[test]
    fn a_drifting_device_is_flagged_and_then_fitted() {
        let (c, worst) = run(PtpConfig::default(), 50.0, false);
        let r = c.report();
        assert_eq!(r.method, "ptp-fault-envelope");
        let p = r.ptp.expect("ptp report");
        assert_eq!(p.status, "fault");
        let why = p.fault.expect("fault");
        assert!(why.contains("ppm"), "{why}");
        // after the fault, stamps follow the host (within the latency), not the drifting device
        // (which is 50 µs off per second by then: 350 µs at 10 s)
        assert!(worst < 300_000.0, "worst {worst} ns");
        assert!((r.drift_ppm - 50.0).abs() < 2.0, "{}", r.drift_ppm);
    }

    #[test]
    fn tai_stamps_need_the_timescale_and_say_so() {
        let (c, _) = run(PtpConfig::default(), 0.0, true);
        let why = c.ptp_report().fault.clone().expect("fault");
        assert!(why.contains("TAI"), "{why}");
        let (c, worst) = run(
            PtpConfig {
                timescale: Timescale::Tai,
                ..Default::default()
            },
            0.0,
            true,
        );
        assert!(!c.faulted(), "{:?}", c.ptp_report());
        assert!(worst <= 1_800.0, "worst {worst} ns");
    }

    #[test]
    fn a_device_ahead_of_the_host_is_flagged() {
        let mut c = PtpClock::new(PtpConfig::default());
        let t = 1_790_000_000_000_000_000u64;
        c.observe((t + 5_000_000) / 1000, t + 100_000, 1);
        assert!(c.faulted());
        assert!(
            c.ptp_report()
                .fault
                .as_deref()
                .unwrap()
                .contains("after its own arrival")
        );
    }
}

//! The clock-sync scenarios of `shared/design/loads.md`, generated deterministically, and the
//! estimators run over them (ours online and offline, and the baselines: naive receive time
//! and least squares). Used by the `scenarios` benchmark and by tests.

use crate::ClockMapper;
use crate::estimator::{EnvelopeClock, EnvelopeConfig};
use crate::offline::{Observation, OfflineConfig, reestimate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};

/// Transport delay beyond the fixed minimum latency.
#[derive(Clone, Copy, Debug)]
pub enum Delay {
    Exp {
        mean_ns: f64,
    },
    Uniform {
        max_ns: f64,
    },
    /// USB high-speed: a wait for the next 125 µs microframe (uniform: the sample's phase
    /// against the bus frames is jittered) plus an exponential host-side delay.
    Usb {
        frame_ns: f64,
        mean_ns: f64,
    },
    /// Worst case of `Usb`: delivery exactly on the host's microframe grid with no jitter, so
    /// when the device clock is nearly locked to the bus the frame phase never slides and the
    /// quantization is unobservable from one-way data.
    UsbLocked {
        frame_ns: f64,
        mean_ns: f64,
    },
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub id: &'static str,
    pub rate_hz: f64,
    pub delay: Delay,
    pub late_fraction: f64,
    pub duration_s: f64,
    /// Drift change rate (ppm per second), e.g. warming up.
    pub drift_ramp_ppm_s: f64,
    pub reboot: bool,
    /// Samples captured in [eval_from_s, eval_to_s) are scored.
    pub eval_from_s: f64,
    pub eval_to_s: f64,
}

impl Scenario {
    pub fn all() -> Vec<Scenario> {
        let base = |id, rate_hz, delay| Scenario {
            id,
            rate_hz,
            delay,
            late_fraction: 0.0,
            duration_s: 20.0,
            drift_ramp_ppm_s: 0.0,
            reboot: false,
            eval_from_s: 10.0,
            eval_to_s: 11.0,
        };
        vec![
            base("A", 1000.0, Delay::Exp { mean_ns: 1e6 }),
            base("B", 100.0, Delay::Exp { mean_ns: 1e6 }),
            base("C", 1000.0, Delay::Uniform { max_ns: 5e6 }),
            Scenario {
                late_fraction: 0.01,
                ..base("E", 100.0, Delay::Exp { mean_ns: 2.5e6 })
            },
            Scenario {
                late_fraction: 0.01,
                ..base(
                    "F",
                    1000.0,
                    Delay::Usb {
                        frame_ns: 125e3,
                        mean_ns: 0.3e6,
                    },
                )
            },
            Scenario {
                late_fraction: 0.01,
                ..base(
                    "F*",
                    1000.0,
                    Delay::UsbLocked {
                        frame_ns: 125e3,
                        mean_ns: 0.3e6,
                    },
                )
            },
            Scenario {
                duration_s: 300.0,
                drift_ramp_ppm_s: 0.05,
                reboot: true,
                eval_to_s: 300.0,
                ..base("L", 1000.0, Delay::Exp { mean_ns: 1e6 })
            },
        ]
    }
    pub fn by_id(id: &str) -> Option<Scenario> {
        Self::all().into_iter().find(|s| s.id == id)
    }
}

/// One generated trial, in host arrival order.
#[derive(Clone, Debug)]
pub struct Trial {
    pub obs: Vec<Observation>,
    /// True capture time + minimum latency (ns) of each observation: what a perfect one-way
    /// estimator can reach.
    pub reference_ns: Vec<u64>,
    pub scored: Vec<bool>,
}

/// Minimum latency of every simulated device (unknown to the estimators).
pub const MIN_LATENCY_NS: u64 = 150_000;

pub fn generate(s: &Scenario, seed: u64) -> Trial {
    let mut rng = ChaCha8Rng::seed_from_u64(
        seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ s.id.as_bytes()[0] as u64,
    );
    let t0: u64 = 1_700_000_000_000_000_000 + seed * 1_000_000_000;
    let d0 = rng.gen_range(-100.0..100.0) * 1e-6;
    let ramp = s.drift_ramp_ppm_s * 1e-6;
    let mut off_us: f64 = rng.gen_range(0.0..1e12);
    let mut boot: u64 = rng.r#gen::<u32>() as u64;
    let reboot_at = if s.reboot {
        Some(rng.gen_range(100.0..200.0))
    } else {
        None
    };
    let mut rebooted = false;
    let phase = |t: f64| t + d0 * t + ramp * t * t / 2.0;
    let n = (s.duration_s * s.rate_hz) as usize;
    let mut rows = Vec::with_capacity(n);
    let late = rand_distr::Uniform::new(20e6, 50e6);
    for k in 0..n {
        // The device samples on its own clock: regular in device time, not in true time, so
        // the capture phase slides against the host (and its USB frames) with the drift.
        let t = k as f64 / s.rate_hz / (1.0 + d0);
        if let Some(tr) = reboot_at
            && !rebooted
            && t >= tr
        {
            rebooted = true;
            boot += 1;
            off_us = rng.gen_range(0.0..1e6) - phase(t) * 1e6;
        }
        let dev = (off_us + phase(t) * 1e6).floor().max(0.0) as u64;
        let true_ns = t0 + (t * 1e9).round() as u64;
        let extra = match s.delay {
            Delay::Exp { mean_ns } => Exp::new(1.0 / mean_ns).expect("mean").sample(&mut rng),
            Delay::Uniform { max_ns } => rng.gen_range(0.0..max_ns),
            Delay::Usb { frame_ns, mean_ns } => {
                // wait for the next microframe (the sample's phase against the bus frames is
                // effectively random: sensor conversion and firmware jitter), then the host side
                rng.gen_range(0.0..frame_ns)
                    + Exp::new(1.0 / mean_ns).expect("mean").sample(&mut rng)
            }
            Delay::UsbLocked { frame_ns, mean_ns } => {
                // worst case: no jitter, delivery exactly on the host's microframe grid
                let ready = true_ns as f64
                    + MIN_LATENCY_NS as f64
                    + Exp::new(1.0 / mean_ns).expect("mean").sample(&mut rng);
                (ready / frame_ns).ceil() * frame_ns - true_ns as f64 - MIN_LATENCY_NS as f64
            }
        };
        let mut host = true_ns + MIN_LATENCY_NS + extra as u64;
        if rng.gen_bool(s.late_fraction) {
            host += late.sample(&mut rng) as u64;
        }
        let scored = t >= s.eval_from_s
            && t < s.eval_to_s
            && !reboot_at.is_some_and(|tr| t >= tr && t < tr + 2.0);
        rows.push((
            host,
            Observation {
                device_us: dev,
                host_ns: host,
                boot_id: boot,
            },
            true_ns + MIN_LATENCY_NS,
            scored,
        ));
    }
    rows.sort_by_key(|r| r.0);
    Trial {
        obs: rows.iter().map(|r| r.1).collect(),
        reference_ns: rows.iter().map(|r| r.2).collect(),
        scored: rows.iter().map(|r| r.3).collect(),
    }
}

fn scored_errors(t: &Trial, mapped: &[u64]) -> Vec<f64> {
    (0..t.obs.len())
        .filter(|&i| t.scored[i])
        .map(|i| (mapped[i] as f64 - t.reference_ns[i] as f64).abs())
        .collect()
}

/// Our online estimator: errors (ns) of the scored samples.
pub fn run_causal(s: &Scenario, seed: u64, cfg: &EnvelopeConfig) -> Vec<f64> {
    let t = generate(s, seed);
    let mut c = EnvelopeClock::new(cfg.clone());
    let mapped: Vec<u64> = t
        .obs
        .iter()
        .map(|o| c.observe(o.device_us, o.host_ns, o.boot_id))
        .collect();
    scored_errors(&t, &mapped)
}

/// Our offline re-estimation over the whole trial.
pub fn run_offline(s: &Scenario, seed: u64, cfg: &OfflineConfig) -> Vec<f64> {
    let t = generate(s, seed);
    let mapped = reestimate(&t.obs, cfg);
    scored_errors(&t, &mapped)
}

/// Baseline: the host receive time.
pub fn run_naive(s: &Scenario, seed: u64) -> Vec<f64> {
    let t = generate(s, seed);
    let mapped: Vec<u64> = t.obs.iter().map(|o| o.host_ns).collect();
    scored_errors(&t, &mapped)
}

/// Baseline: causal ordinary least squares of offset on device time (per boot).
pub fn run_least_squares(s: &Scenario, seed: u64) -> Vec<f64> {
    let t = generate(s, seed);
    let mut mapped = Vec::with_capacity(t.obs.len());
    let mut boot = None;
    let (mut n, mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let mut origin = (0i128, 0i128);
    for o in &t.obs {
        if boot != Some(o.boot_id) {
            boot = Some(o.boot_id);
            (n, sx, sy, sxx, sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
            origin = (
                o.device_us as i128,
                o.host_ns as i128 - o.device_us as i128 * 1000,
            );
        }
        let c = o.device_us as i128;
        let x = (c - origin.0) as f64;
        let y = (o.host_ns as i128 - c * 1000 - origin.1) as f64;
        n += 1.0;
        sx += x;
        sy += y;
        sxx += x * x;
        sxy += x * y;
        let den = n * sxx - sx * sx;
        let b = if den.abs() > 1e-9 {
            (n * sxy - sx * sy) / den
        } else {
            0.0
        };
        let a = (sy - b * sx) / n;
        mapped.push((c * 1000 + origin.1 + (a + b * x).round() as i128) as u64);
    }
    scored_errors(&t, &mapped)
}

/// p-th percentile of `v` (sorts it).
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[(((v.len() - 1) as f64) * p / 100.0).round() as usize]
}

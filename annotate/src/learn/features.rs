//! What a model sees of an episode: a multichannel series on a regular time grid (for
//! aligning boundaries), and a fixed vector of per-episode figures (for the outcome).
//!
//! Channels are in SI units of the robot's own signals (m/s, N, kPa); they become comparable
//! across channels only through the scales a model learns from its training episodes
//! ([`Scales`]), never through constants of one robot.

use crate::segment::{
    Segmentation, Signals, deriv, idx, median_dt, percentile, resample, smooth, tare, tared_load,
};
use hal::robot::Kinematics;
use hal::sim::plan::Outcome;
use serde::{Deserialize, Serialize};

/// The series' channels, in order.
pub const CHANNELS: [&str; 7] = [
    "ee_speed",
    "ee_vz",
    "aperture",
    "aperture_rate",
    "load",
    "load_rate",
    "touch",
];
pub const C: usize = CHANNELS.len();
/// The grid's rate (Hz), lowered for long episodes so that no series exceeds [`MAX_LEN`].
pub const RATE_HZ: f64 = 50.0;
pub const MAX_LEN: usize = 3000;

/// One episode as a model sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Series {
    /// Grid interval (s); sample `k` is at `k × dt` from the episode start.
    pub dt: f64,
    /// Row-major, [`C`] values a row.
    pub x: Vec<f64>,
    /// Which channels the recording could fill (a robot without a gripper has no aperture).
    pub present: [bool; C],
}

impl Series {
    pub fn len(&self) -> usize {
        self.x.len() / C
    }
    pub fn is_empty(&self) -> bool {
        self.x.is_empty()
    }
    pub fn channel(&self, c: usize) -> Vec<f64> {
        self.x.chunks(C).map(|r| r[c]).collect()
    }
}

/// The episode's series.
pub fn series(s: &Signals, arm: &dyn Kinematics) -> Series {
    let dur = s.duration_s.max(0.0);
    let rate = RATE_HZ.min(MAX_LEN as f64 / dur.max(1e-9));
    let dt = 1.0 / rate;
    let n = ((dur / dt).floor() as usize + 1).min(MAX_LEN);
    let grid: Vec<f64> = (0..n).map(|k| k as f64 * dt).collect();
    let mut ch: Vec<Vec<f64>> = vec![vec![0.0; n]; C];
    let mut present = [false; C];
    let has_joints = s.t.len() >= 2 && s.q.len() == s.t.len();
    let poses: Vec<nalgebra::Isometry3<f64>> = if has_joints {
        s.q.iter().map(|q| arm.fk(q)).collect()
    } else {
        Vec::new()
    };
    // half-windows of ±30 ms: operator tremor and encoder steps are not motion
    let half = |t: &[f64], seconds: f64| ((seconds / median_dt(t)).round() as usize).max(1);
    if has_joints {
        let t = &s.t;
        let h = half(t, 0.03);
        let axis = |f: fn(&nalgebra::Vector3<f64>) -> f64| {
            let p: Vec<f64> = poses.iter().map(|p| f(&p.translation.vector)).collect();
            smooth(&deriv(t, &smooth(&p, h), h), h)
        };
        let (vx, vy, vz) = (axis(|v| v.x), axis(|v| v.y), axis(|v| v.z));
        let speed: Vec<f64> = (0..t.len())
            .map(|i| (vx[i] * vx[i] + vy[i] * vy[i] + vz[i] * vz[i]).sqrt())
            .collect();
        ch[0] = resample(t, &speed, &grid);
        ch[1] = resample(t, &vz, &grid);
        present[0] = true;
        present[1] = true;
        let gripper = s.aperture.len() == t.len() && {
            let lo = s.aperture.iter().copied().fold(f64::MAX, f64::min);
            let hi = s.aperture.iter().copied().fold(f64::MIN, f64::max);
            hi - lo > 1e-3
        };
        if gripper {
            let a = smooth(&s.aperture, h);
            ch[2] = resample(t, &a, &grid);
            ch[3] = resample(t, &deriv(t, &a, h), &grid);
            present[2] = true;
            present[3] = true;
        }
    }
    if let Some((tw, w)) = &s.wrench
        && tw.len() > 20
    {
        let rot = |tt: f64| {
            if poses.is_empty() {
                nalgebra::UnitQuaternion::identity()
            } else {
                poses[idx(&s.t, tt)].rotation
            }
        };
        // tare on what comes before the gripper first closes (or the first tenth)
        let until = first_close(s).unwrap_or(0.1 * dur).max(0.2);
        let (bias, tool_n) = tare(tw, w, &rot, until);
        let load = tared_load(tw, w, &rot, bias, tool_n);
        let k0 = tw.partition_point(|&x| x < until).max(1);
        let base =
            |c: usize| percentile(&load[..k0].iter().map(|v| v[c]).collect::<Vec<_>>(), 50.0);
        let b = [base(0), base(1), base(2)];
        let mag: Vec<f64> = load
            .iter()
            .map(|v| ((v[0] - b[0]).powi(2) + (v[1] - b[1]).powi(2) + (v[2] - b[2]).powi(2)).sqrt())
            .collect();
        let h = half(tw, 0.03);
        let mag = smooth(&mag, h);
        ch[4] = resample(tw, &mag, &grid);
        ch[5] = resample(tw, &smooth(&deriv(tw, &mag, h), h), &grid);
        present[4] = true;
        present[5] = true;
    }
    if let Some((tt, total, _)) = &s.tactile
        && tt.len() > 2
    {
        ch[6] = resample(tt, &smooth(total, half(tt, 0.03)), &grid);
        present[6] = true;
    }
    let mut x = Vec::with_capacity(n * C);
    for k in 0..n {
        for c in ch.iter() {
            x.push(c[k]);
        }
    }
    Series { dt, x, present }
}

/// When the gripper first starts closing (s): its opening falls below 80 % of its range.
fn first_close(s: &Signals) -> Option<f64> {
    if s.aperture.len() != s.t.len() || s.t.is_empty() {
        return None;
    }
    let hi = percentile(&s.aperture, 99.0);
    let lo = percentile(&s.aperture, 1.0);
    if hi - lo <= 1e-3 {
        return None;
    }
    let thr = lo + 0.8 * (hi - lo);
    s.aperture.iter().position(|a| *a < thr).map(|i| s.t[i])
}

/// Per-channel scales (a typical magnitude of each channel over a training set), so that a
/// newton and a metre per second weigh alike in an alignment.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Scales(pub [f64; C]);

impl Scales {
    /// The median, over episodes, of each channel's 95th-percentile magnitude.
    pub fn fit(series: &[&Series]) -> Scales {
        let mut out = [1.0; C];
        for (c, o) in out.iter_mut().enumerate() {
            let mut v: Vec<f64> = series
                .iter()
                .filter(|s| s.present[c])
                .map(|s| {
                    percentile(
                        &s.channel(c).iter().map(|x| x.abs()).collect::<Vec<_>>(),
                        95.0,
                    )
                })
                .collect();
            v.sort_by(f64::total_cmp);
            if let Some(m) = v.get(v.len() / 2).filter(|m| **m > 1e-9) {
                *o = *m;
            }
        }
        Scales(out)
    }

    /// `s` divided by the scales, channels absent from `mask` zeroed.
    pub fn apply(&self, s: &Series, mask: &[bool; C]) -> Vec<f64> {
        s.x.chunks(C)
            .flat_map(|r| (0..C).map(move |c| if mask[c] { r[c] / self.0[c] } else { 0.0 }))
            .collect()
    }
}

/// Names of the outcome figures, in order (the rules' verdict last).
pub const OUTCOME_FEATURES: [&str; 14] = [
    "closed_aperture",
    "aperture_creep",
    "closed_share",
    "closings",
    "held_load",
    "load_loss_ratio",
    "load_after_open",
    "load_transient",
    "held_touch",
    "touch_loss",
    "rules_success",
    "rules_slip",
    "rules_drop",
    "rules_miss",
];
pub const RULE_FEATURES: usize = 4;

/// The largest short disturbance of the load (N) while the part is carried: the load's
/// deviation from its own 0.3 s moving average, over the closed span's samples where at
/// least half the held load is on the wrist, 0.3 s in from either end (grasp and release
/// transients are not disturbances). A part sliding in the fingers jolts the wrist; carrying
/// it through a smooth motion does not. 0 when nothing is carried.
fn load_transient(
    load: &[f64],
    az: Option<&[f64]>,
    start: usize,
    end: usize,
    held: f64,
    dt: f64,
) -> f64 {
    if held <= 0.0 || end <= start {
        return 0.0;
    }
    let carried: Vec<usize> = (start..=end.min(load.len() - 1))
        .filter(|&k| load[k] >= 0.5 * held)
        .collect();
    let (Some(&a), Some(&b)) = (carried.first(), carried.last()) else {
        return 0.0;
    };
    let margin = (0.3 / dt).round() as usize;
    let (a, b) = (a + margin, b.saturating_sub(margin));
    if b <= a {
        return 0.0;
    }
    // what the tool's own vertical acceleration puts on the wrist (m (g + a)), from FK: a
    // jerky operator shakes the load, a sliding part moves against the fingers
    let r: Vec<f64> = match az {
        Some(az) => load
            .iter()
            .zip(az)
            .map(|(l, a)| l - held * a / 9.81)
            .collect(),
        None => load.to_vec(),
    };
    let ma = smooth(&r, ((0.15 / dt).round() as usize).max(1));
    (a..=b)
        .filter(|&k| load[k] >= 0.5 * held)
        .map(|k| (r[k] - ma[k]).abs())
        .fold(0.0, f64::max)
}

/// The outcome figures of an episode: how the gripper closed and what it held, from its
/// series, and the rules' verdict (one-hot). `None` for an episode with no gripper.
pub fn outcome_features(s: &Series, rules: &Segmentation) -> Option<Vec<f64>> {
    if !s.present[2] {
        return None;
    }
    let a = s.channel(2);
    let n = a.len();
    let (lo, hi) = (percentile(&a, 1.0), percentile(&a, 99.0));
    let range = (hi - lo).max(1e-6);
    // normalised opening: 1 open, 0 as closed as it ever got
    let an: Vec<f64> = a.iter().map(|x| (x - lo) / range).collect();
    let closed: Vec<bool> = an.iter().map(|x| *x < 0.6).collect();
    let closings = closed.windows(2).filter(|w| !w[0] && w[1]).count() as f64;
    // the last closed span: the attempt that gives the episode its outcome
    let end = closed.iter().rposition(|c| *c)?;
    let start = closed[..end].iter().rposition(|c| !*c).map_or(0, |i| i + 1);
    let span = end + 1 - start;
    let at = |f: f64| start + ((span as f64 * f) as usize).min(span - 1);
    let mean = |v: &[f64], a: usize, b: usize| {
        let b = b.max(a + 1).min(v.len());
        v[a..b].iter().sum::<f64>() / (b - a).max(1) as f64
    };
    let closed_aperture = mean(&an, at(0.2), at(0.8));
    let aperture_creep = mean(&an, at(0.1), at(0.3)) - mean(&an, at(0.7), at(0.95));
    let closed_share = span as f64 / n.max(1) as f64;
    let (load, touch) = (s.channel(4), s.channel(6));
    let held_load = mean(&load, at(0.3), at(0.6));
    let late_load = mean(&load, at(0.8), at(0.97));
    // figures relative to what was held are the same for a light and a heavy part; the
    // floor is the sensor's own noise while nothing is held (before the grasp), so an empty
    // gripper's tiny "load" does not become a large ratio
    let idle = &load[..start.max(1).min(n)];
    let floor = (3.0 * (percentile(idle, 95.0) - percentile(idle, 5.0)).abs()).max(1e-3);
    let held = held_load.max(floor);
    let load_loss_ratio = (held_load - late_load) / held;
    let after = (end + 1).min(n - 1);
    let load_after_open = mean(&load, after, after + (1.0 / s.dt) as usize);
    let az = s.present[1].then(|| {
        let t: Vec<f64> = (0..n).map(|k| k as f64 * s.dt).collect();
        deriv(&t, &s.channel(1), 1)
    });
    let load_transient = load_transient(&load, az.as_deref(), start, end, held_load, s.dt) / held;
    let held_touch = mean(&touch, at(0.3), at(0.6));
    let touch_loss = held_touch - mean(&touch, at(0.8), at(0.97));
    let mut f = vec![
        closed_aperture,
        aperture_creep,
        closed_share,
        closings,
        held_load,
        load_loss_ratio,
        load_after_open,
        load_transient,
        held_touch,
        touch_loss,
    ];
    let o = rules.outcome;
    for k in [
        Outcome::Success,
        Outcome::Slip,
        Outcome::Drop,
        Outcome::Miss,
    ] {
        f.push(f64::from(u8::from(o == Some(k))));
    }
    debug_assert_eq!(f.len(), OUTCOME_FEATURES.len());
    Some(f)
}

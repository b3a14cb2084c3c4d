//! Automatic task-phase segmentation and grasp-outcome classification
//! (`shared/design/taxonomy.md`).
//!
//! Works on [`Signals`]: joint positions (→ end-effector pose by forward kinematics) and the
//! gripper opening, and, when present, the wrist wrench (→ vertical load in the world frame)
//! and the fingertip tactile maps (→ total pressure and contact centroid). Motion onsets and
//! ends are located by extrapolating the square root of the speed to zero: smooth operator
//! motions start and stop with speed growing like the square of time, so √speed is close to
//! linear near an onset, which puts the boundary on the true instant rather than where the
//! speed first crosses a threshold. Thresholds are relative to each episode's own levels
//! (its held load, its open aperture), not constants of the simulator.

use hal::robot::Kinematics;
use hal::sim::plan::{Outcome, Phase, PhaseSpan};
use serde::Serialize;

/// Time series of one episode, times in seconds from the episode start.
#[derive(Clone, Debug, Default)]
pub struct Signals {
    pub t: Vec<f64>,
    /// The arm's joint positions (SI: rad, m), one row per time, in chain order.
    pub q: Vec<Vec<f64>>,
    /// Gripper opening (m) at the same times.
    pub aperture: Vec<f64>,
    /// Wrist wrench in the sensor frame: times and (fx, fy, fz, tx, ty, tz).
    pub wrench: Option<(Vec<f64>, Vec<[f64; 6]>)>,
    /// Fingertip tactile: times, total pressure (kPa, both tips), contact centroid row.
    pub tactile: Option<(Vec<f64>, Vec<f64>, Vec<f64>)>,
    pub duration_s: f64,
    /// Configured streams the recording declares (it has their channel) but that hold no
    /// message: a sensor that was expected and fell silent. A stream the recording has no
    /// channel for is not missing: the robot has no such sensor.
    pub silent: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Segmentation {
    pub phases: Vec<PhaseSpan>,
    /// The last attempt's outcome (the episode's label); `None` when no grasp was seen and
    /// the episode got `segment` spans instead.
    pub outcome: Option<Outcome>,
    /// Confidence in [0, 1] of the outcome (of the segmentation when there is none).
    pub confidence: f64,
    /// Every grasp attempt, in order: a regrasp after a miss or a drop is a second attempt.
    pub attempts: Vec<Attempt>,
    /// Which signals were used, and the evidence behind the outcome.
    pub used: Vec<&'static str>,
    pub evidence: Vec<String>,
}

/// One grasp attempt: its outcome, the outcome's confidence, when its grasp began.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Attempt {
    pub outcome: Outcome,
    pub confidence: f64,
    pub grasp_s: f64,
}

pub(crate) fn smooth(x: &[f64], half: usize) -> Vec<f64> {
    let n = x.len();
    let mut pre = vec![0.0; n + 1];
    for i in 0..n {
        pre[i + 1] = pre[i] + x[i];
    }
    (0..n)
        .map(|i| {
            let a = i.saturating_sub(half);
            let b = (i + half + 1).min(n);
            (pre[b] - pre[a]) / (b - a) as f64
        })
        .collect()
}

/// The median interval between samples (s): windows in seconds become sample counts with it.
pub(crate) fn median_dt(t: &[f64]) -> f64 {
    let mut d: Vec<f64> = t
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|d| *d > 0.0)
        .collect();
    d.sort_by(f64::total_cmp);
    d.get(d.len() / 2).copied().unwrap_or(0.002)
}

impl Signals {
    /// The signals of a family-simulator episode (`hal::sim::family`), as `read_signals`
    /// would read its recording: no tactile, the raw wrench.
    pub fn from_family(ep: &hal::sim::family::FamilyEpisode) -> Signals {
        Signals {
            t: ep.t.clone(),
            q: ep.q.clone(),
            aperture: ep.aperture.clone().unwrap_or_default(),
            wrench: Some((ep.wrench_t.clone(), ep.wrench.clone())),
            tactile: None,
            duration_s: ep.duration_s,
            silent: Vec::new(),
        }
    }
}

/// Element-wise length of the vectors (x[i], y[i], z[i]).
pub(crate) fn norm3(x: &[f64], y: &[f64], z: &[f64]) -> Vec<f64> {
    x.iter()
        .zip(y)
        .zip(z)
        .map(|((a, b), c)| (a * a + b * b + c * c).sqrt())
        .collect()
}

/// A noise level from absolute deviations: 1.4826 × their median (the normal σ a median
/// absolute deviation stands for). Empty: 0.
pub(crate) fn robust_sigma(mut dev: Vec<f64>) -> f64 {
    if dev.is_empty() {
        return 0.0;
    }
    dev.sort_by(f64::total_cmp);
    1.4826 * dev[dev.len() / 2]
}

/// The wrist load in the world frame: each reading less the sensor's bias and the tool's own
/// weight (as [`tare`] found them) seen in the sensor frame, rotated by the sensor's
/// orientation at its time.
pub(crate) fn tared_load(
    tw: &[f64],
    w: &[[f64; 6]],
    rot: &dyn Fn(f64) -> nalgebra::UnitQuaternion<f64>,
    bias: [f64; 3],
    tool_n: f64,
) -> Vec<nalgebra::Vector3<f64>> {
    tw.iter()
        .zip(w)
        .map(|(&tt, f)| {
            let r = rot(tt);
            let g = r.inverse() * nalgebra::Vector3::new(0.0, 0.0, -tool_n);
            r * (nalgebra::Vector3::new(f[0] - bias[0], f[1] - bias[1], f[2] - bias[2]) - g)
        })
        .collect()
}

/// Central-difference derivative over ±`half` samples.
pub(crate) fn deriv(t: &[f64], x: &[f64], half: usize) -> Vec<f64> {
    let n = x.len();
    (0..n)
        .map(|i| {
            let a = i.saturating_sub(half);
            let b = (i + half).min(n - 1);
            if t[b] > t[a] {
                (x[b] - x[a]) / (t[b] - t[a])
            } else {
                0.0
            }
        })
        .collect()
}

/// Resample `(ts, xs)` at `t` by linear interpolation.
pub(crate) fn resample(ts: &[f64], xs: &[f64], t: &[f64]) -> Vec<f64> {
    let mut j = 0;
    t.iter()
        .map(|&q| {
            while j + 1 < ts.len() && ts[j + 1] < q {
                j += 1;
            }
            if ts.is_empty() {
                return 0.0;
            }
            if j + 1 >= ts.len() || q <= ts[j] {
                return xs[j.min(xs.len() - 1)];
            }
            let f = (q - ts[j]) / (ts[j + 1] - ts[j]);
            xs[j] + (xs[j + 1] - xs[j]) * f
        })
        .collect()
}

/// Onset of a rise of `v` (≥ 0) that first exceeds `hi` at index `k`: extrapolate √v to 0
/// from where it crosses `lo` and `hi` before `k`.
pub(crate) fn onset(t: &[f64], v: &[f64], k: usize, lo: f64, hi: f64) -> f64 {
    let mut i_hi = k;
    while i_hi > 0 && v[i_hi - 1] >= hi {
        i_hi -= 1;
    }
    let mut i_lo = i_hi;
    while i_lo > 0 && v[i_lo - 1] >= lo {
        i_lo -= 1;
    }
    let cross = |i: usize, level: f64| -> f64 {
        if i == 0 || v[i] == v[i - 1] {
            return t[i];
        }
        let f = (level - v[i - 1]) / (v[i] - v[i - 1]);
        t[i - 1] + f.clamp(0.0, 1.0) * (t[i] - t[i - 1])
    };
    let (t1, t2) = (cross(i_lo, lo), cross(i_hi, hi));
    let (s1, s2) = (lo.sqrt(), hi.sqrt());
    if t2 > t1 {
        t1 - (t2 - t1) * s1 / (s2 - s1)
    } else {
        t1
    }
}

/// End of a motion whose `v` falls below `hi` then `lo` after index `k` (mirror of onset).
pub(crate) fn offset(t: &[f64], v: &[f64], k: usize, lo: f64, hi: f64) -> f64 {
    let n = v.len();
    let mut i_hi = k;
    while i_hi + 1 < n && v[i_hi + 1] >= hi {
        i_hi += 1;
    }
    let mut i_lo = i_hi;
    while i_lo + 1 < n && v[i_lo + 1] >= lo {
        i_lo += 1;
    }
    let cross = |i: usize, level: f64| -> f64 {
        if i + 1 >= n || v[i] == v[i + 1] {
            return t[i];
        }
        let f = (v[i] - level) / (v[i] - v[i + 1]);
        t[i] + f.clamp(0.0, 1.0) * (t[i + 1] - t[i])
    };
    let (t2, t1) = (cross(i_hi, hi), cross(i_lo, lo));
    let (s1, s2) = (lo.sqrt(), hi.sqrt());
    if t1 > t2 {
        t1 + (t1 - t2) * s1 / (s2 - s1)
    } else {
        t1
    }
}

pub(crate) fn first_from(v: &[f64], from: usize, pred: impl Fn(f64) -> bool) -> Option<usize> {
    (from..v.len()).find(|&i| pred(v[i]))
}

pub(crate) fn idx(t: &[f64], time: f64) -> usize {
    t.partition_point(|&x| x < time)
        .min(t.len().saturating_sub(1))
}

/// The force sensor's bias (sensor frame, N) and the weight (N) of what hangs on it before
/// anything is grasped, fitted by least squares on the readings before `until` s:
/// `f = bias + Rᵀ (0, 0, −weight)` as the wrist turns. With too little rotation to tell them
/// apart, or too few samples, the weight is 0 and the bias the mean reading.
pub(crate) fn tare(
    tw: &[f64],
    w: &[[f64; 6]],
    rot: &dyn Fn(f64) -> nalgebra::UnitQuaternion<f64>,
    until: f64,
) -> ([f64; 3], f64) {
    let rows: Vec<(nalgebra::Vector3<f64>, nalgebra::Vector3<f64>)> = tw
        .iter()
        .zip(w)
        .filter(|(t, _)| **t < until)
        .map(|(t, f)| {
            // the column multiplying the weight: Rᵀ (0, 0, −1)
            let c = rot(*t).inverse() * nalgebra::Vector3::new(0.0, 0.0, -1.0);
            (c, nalgebra::Vector3::new(f[0], f[1], f[2]))
        })
        .collect();
    if rows.len() < 20 {
        return ([0.0; 3], 0.0);
    }
    let mean = rows.iter().fold(nalgebra::Vector3::zeros(), |a, r| a + r.1) / rows.len() as f64;
    // normal equations of [I3 | c] [b; m] = f
    let mut ata = nalgebra::Matrix4::<f64>::zeros();
    let mut atb = nalgebra::Vector4::<f64>::zeros();
    for (c, f) in &rows {
        let a =
            nalgebra::Matrix3x4::new(1.0, 0.0, 0.0, c.x, 0.0, 1.0, 0.0, c.y, 0.0, 0.0, 1.0, c.z);
        ata += a.transpose() * a;
        atb += a.transpose() * f;
    }
    // the spread of c decides whether the weight is observable
    let cm = rows.iter().fold(nalgebra::Vector3::zeros(), |a, r| a + r.0) / rows.len() as f64;
    let spread = rows.iter().map(|r| (r.0 - cm).norm_squared()).sum::<f64>() / rows.len() as f64;
    if spread < 0.01 {
        return ([mean.x, mean.y, mean.z], 0.0);
    }
    match ata.try_inverse() {
        Some(inv) => {
            let x = inv * atb;
            ([x[0], x[1], x[2]], x[3])
        }
        None => ([mean.x, mean.y, mean.z], 0.0),
    }
}

/// Segment one episode: the pick-and-place phases and an outcome per attempt when the
/// gripper closes on something (a regrasp after a miss or a drop is segmented as a second
/// attempt), `segment` spans from the changes in motion and contact otherwise (no gripper,
/// or a gripper that never closes: a part held from the start, a fixed tool).
pub fn segment(s: &Signals, arm: &dyn Kinematics) -> Segmentation {
    if s.t.is_empty() && s.wrench.as_ref().is_some_and(|(tw, _)| tw.len() >= 50) {
        return crate::segments::segments(s, arm, "no joint states recorded");
    }
    if s.t.len() < 50 {
        return unsegmented(
            s.duration_s,
            0.0,
            vec!["joint_states"],
            "too few joint samples to segment",
        );
    }
    let gripper = s.aperture.len() == s.t.len() && {
        let (lo, hi) = s
            .aperture
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(*x), b.max(*x)));
        hi - lo > 1e-3
    };
    if !gripper {
        return crate::segments::segments(s, arm, "no gripper motion recorded");
    }
    let Some((mut seg, close_thr)) = rules(s, arm, 0.0) else {
        return crate::segments::segments(s, arm, "the gripper never closed on anything");
    };
    // a failed attempt followed by another closing: the operator tries again
    for _ in 0..4 {
        if !matches!(seg.outcome, Some(Outcome::Miss | Outcome::Drop)) {
            break;
        }
        let Some(retreat) = seg
            .phases
            .iter()
            .find(|p| p.phase == Phase::Retreat)
            .copied()
        else {
            break;
        };
        let sub = slice_from(s, retreat.start_s);
        if sub.t.len() < 50 {
            break;
        }
        let Some((next, _)) = rules(&sub, arm, close_thr) else {
            break;
        };
        // the failed attempt up to its release, then the next from the moment the fingers
        // were open again: the way back to the part is its reach
        seg.phases.retain(|p| p.start_s < retreat.start_s);
        let mut rest: Vec<PhaseSpan> = next
            .phases
            .iter()
            .filter(|p| p.end_s > retreat.start_s)
            .copied()
            .skip_while(|p| p.phase == Phase::Idle)
            .collect();
        if let Some(first) = rest.first_mut() {
            first.start_s = retreat.start_s;
        }
        if let Some(last) = seg.phases.last_mut() {
            last.end_s = retreat.start_s;
        }
        seg.phases.extend(rest);
        seg.attempts.extend(next.attempts.iter().copied());
        seg.outcome = next.outcome;
        seg.confidence = next.confidence;
        seg.evidence.push(format!(
            "attempt {} from {:.3} s:",
            seg.attempts.len(),
            retreat.start_s
        ));
        seg.evidence.extend(next.evidence);
    }
    seg
}

/// The part of `s` from `t0` on (times kept), for segmenting a later attempt.
fn slice_from(s: &Signals, t0: f64) -> Signals {
    let k = s.t.partition_point(|&x| x < t0);
    Signals {
        t: s.t[k..].to_vec(),
        q: s.q[k..].to_vec(),
        aperture: s.aperture[k.min(s.aperture.len())..].to_vec(),
        wrench: s.wrench.as_ref().map(|(tw, w)| {
            let j = tw.partition_point(|&x| x < t0);
            (tw[j..].to_vec(), w[j..].to_vec())
        }),
        tactile: s.tactile.as_ref().map(|(tt, a, b)| {
            let j = tt.partition_point(|&x| x < t0);
            (tt[j..].to_vec(), a[j..].to_vec(), b[j..].to_vec())
        }),
        duration_s: s.duration_s,
        silent: s.silent.clone(),
    }
}

/// One pick-and-place attempt by rules, and the closing-speed threshold it used (m/s);
/// `None` when the gripper never closes faster than `min_close` and its own threshold.
fn rules(s: &Signals, arm: &dyn Kinematics, min_close: f64) -> Option<(Segmentation, f64)> {
    let t = &s.t;
    let n = t.len();
    let mut used = vec!["joint_states"];
    let mut evidence = Vec::new();
    let dur = s.duration_s;
    // kinematics
    let poses: Vec<_> = s.q.iter().map(|q| arm.fk(q)).collect();
    let px: Vec<f64> = poses.iter().map(|p| p.translation.x).collect();
    let py: Vec<f64> = poses.iter().map(|p| p.translation.y).collect();
    let pz: Vec<f64> = poses.iter().map(|p| p.translation.z).collect();
    // windows in seconds, as samples of this episode's joint rate (500 Hz: the simulator's;
    // 30 Hz: a LeRobot arm's), never fewer than one
    let dt = median_dt(t);
    let win = |seconds: f64| ((seconds / dt).round() as usize).max(1);
    let h = win(0.010); // the derivative's half window
    let (vx, vy, vz) = (deriv(t, &px, h), deriv(t, &py, h), deriv(t, &pz, h));
    let mut speed = norm3(&vx, &vy, &vz);
    // a trembling hand (a teleoperator's tremor passed on to the arm): the speed's fast
    // part, its 90th percentile about a 50 ms trend; above 5 mm/s the motion is judged on
    // positions low-passed over ±30 ms (a 60 ms boxcar: tremor damped, onsets moved little;
    // ±60 ms took more tremor but put onsets ~50 ms early: the rough family median 46 ms)
    let tremor = {
        let trend = smooth(&speed, win(0.025));
        let dev: Vec<f64> = speed
            .iter()
            .zip(&trend)
            .map(|(a, b)| (a - b).abs())
            .collect();
        percentile(&dev, 90.0)
    };
    let vz_raw = vz.clone();
    let (mut vz, mut pz) = (vz, pz);
    // (at a joint rate below ~120 Hz a 50 ms trend is a sample or two: no tremor measure)
    if tremor > 0.005 && win(0.025) >= 3 {
        let w = win(0.030);
        let (sx, sy, sz) = (smooth(&px, w), smooth(&py, w), smooth(&pz, w));
        let (ax, ay, az) = (deriv(t, &sx, h), deriv(t, &sy, h), deriv(t, &sz, h));
        speed = norm3(&ax, &ay, &az);
        vz = az;
        pz = sz;
        evidence.push(format!(
            "hand tremor {:.0} mm/s: motion judged on positions low-passed over ±30 ms",
            tremor * 1e3
        ));
    }
    // motion levels: 3 cm/s and 4 mm/s, or above what the hand does at rest (the slowest
    // fifth of the episode) for a noisy one
    let rest = percentile(&speed, 20.0);
    let v_hi = 0.03f64.max(3.0 * rest);
    let v_lo = 0.004f64.max(1.5 * rest);
    let ap = &s.aperture;
    let dap = deriv(t, ap, h);
    let closing: Vec<f64> = dap.iter().map(|v| (-v).max(0.0)).collect();
    let opening: Vec<f64> = dap.iter().map(|v| v.max(0.0)).collect();
    let up: Vec<f64> = vz.iter().map(|v| v.max(0.0)).collect();
    let open_level = ap.iter().copied().fold(0.0, f64::max);

    // the gripper's first strong closing (the grasp, step 1 below): before it the wrist
    // carries nothing, which is where the force sensor is tared
    // a fifth of a typical full-close speed, or less for a slow hand: 30 % of this episode's
    // 99th-percentile closing speed (a percentile, so a one-sample step is not the scale)
    let close_thr = (0.2 * (open_level / 0.5).max(0.01))
        .min(0.3 * percentile(&closing, 99.0))
        .max(min_close);
    let first_close = first_from(&closing, 0, |v| v > close_thr);

    // load along world z (N), tared, and tactile, on the joint time base
    let mut noise_n = 0.0;
    let load = s.wrench.as_ref().map(|(tw, w)| {
        used.push("wrench");
        let rot = |tt: f64| poses[idx(t, tt)].rotation;
        let until = first_close.map_or(0.0, |k| t[k] - 0.05);
        let (bias, tool_n) = tare(tw, w, &rot, until);
        let world_z: Vec<f64> = tared_load(tw, w, &rot, bias, tool_n)
            .iter()
            .map(|v| -v.z)
            .collect();
        let raw = resample(tw, &world_z, t);
        let fast = smooth(&raw, win(0.004));
        // the noise floor: spread of the fast load about its trend while nothing is held
        let k_end = idx(t, until);
        if k_end > win(0.2) {
            let base = smooth(&fast[..k_end], win(0.050));
            noise_n = robust_sigma(
                fast[..k_end]
                    .iter()
                    .zip(&base)
                    .map(|(x, m)| (x - m).abs())
                    .collect(),
            );
        }
        if tool_n.abs() > 0.5 || bias.iter().any(|b| b.abs() > 0.5) {
            evidence.push(format!(
                "force sensor tared before the grasp: bias ({:.2}, {:.2}, {:.2}) N, tool weight {:.2} N",
                bias[0], bias[1], bias[2], tool_n
            ));
        }
        (smooth(&raw, win(0.020)), fast)
    });
    // slow (for levels) and fast (for transients) versions of the load
    let (load, load_fast) = match load {
        Some((a, b)) => (Some(a), Some(b)),
        None => (None, None),
    };
    let tact = s.tactile.as_ref().map(|(tt, total, cen)| {
        used.push("tactile");
        (
            smooth(&resample(tt, total, t), win(0.010)),
            resample(tt, cen, t),
        )
    });

    // 1. grasp: the gripper starts closing (first strong closing motion)
    let k_close = first_close?;
    let t_grasp = onset(t, &closing, k_close, close_thr * 0.05, close_thr * 0.4);
    // 2. reach: the first motion of the end effector before the grasp
    let k_move = first_from(&speed, 0, |v| v > v_hi)
        .filter(|&k| t[k] < t_grasp)
        .unwrap_or(0);
    let t_reach = onset(t, &speed, k_move, v_lo, v_hi);
    // closing ends: aperture at rest
    let k_closed = first_from(&closing, k_close, |v| v < close_thr * 0.02).unwrap_or(n - 1);
    let held_aperture = ap[(k_closed + win(0.020)).min(n - 1)];
    let acquired = held_aperture > 0.2 * open_level;
    evidence.push(format!(
        "aperture after closing {:.1} mm of {:.1} mm open",
        held_aperture * 1e3,
        open_level * 1e3
    ));
    // release: the gripper starts opening after the closure
    let open_thr = close_thr;
    let k_open = first_from(&opening, k_closed, |v| v > open_thr);
    let t_release = k_open.map(|k| onset(t, &opening, k, open_thr * 0.05, open_thr * 0.4));
    let t_opened = k_open.map(|k| offset(t, &opening, k, open_thr * 0.05, open_thr * 0.4));
    // retreat ends: the arm comes to rest after the gripper opened
    let t_idle = t_opened.and_then(|to| {
        let k0 = idx(t, to);
        let k = first_from(&speed, k0, |v| v > v_hi)?;
        // last motion peak, then its end
        let mut kk = k;
        let mut end = offset(t, &speed, kk, v_lo, v_hi);
        while let Some(k2) = first_from(&speed, idx(t, end) + 1, |v| v > v_hi) {
            kk = k2;
            end = offset(t, &speed, kk, v_lo, v_hi);
        }
        Some(end)
    });

    let mut phases: Vec<(Phase, f64)> = vec![
        (Phase::Idle, 0.0),
        (Phase::Reach, t_reach),
        (Phase::Grasp, t_grasp),
    ];
    let mut outcome;
    let mut confidence;
    if !acquired {
        outcome = Outcome::Miss;
        confidence = (1.0 - held_aperture / (0.2 * open_level)).clamp(0.5, 1.0);
        evidence.push("fingers closed on nothing".into());
    } else {
        // lift: upward motion after the closure
        // (while the gripper is still closed: a rise after it opened is the retreat)
        let k_up = first_from(&up, k_closed, |v| v > v_hi);
        let before_release = |x: &f64| t_release.is_none_or(|tr| *x < tr);
        let t_lift = k_up
            .map(|k| onset(t, &up, k, v_lo, v_hi))
            .filter(before_release);
        // transport: 2 cm above the support
        let t_transport = t_lift
            .and_then(|tl| {
                let k0 = idx(t, tl);
                let z0 = pz[k0];
                let k = first_from(&pz, k0, |z| z - z0 >= 0.02)?;
                let f = if k > 0 && pz[k] != pz[k - 1] {
                    (z0 + 0.02 - pz[k - 1]) / (pz[k] - pz[k - 1])
                } else {
                    1.0
                };
                Some(t[k - 1] + f.clamp(0.0, 1.0) * (t[k] - t[k - 1]))
            })
            .filter(before_release);
        if let Some(tl) = t_lift {
            phases.push((Phase::Lift, tl));
        }
        if let Some(tt) = t_transport {
            phases.push((Phase::Transport, tt));
        }
        // drop: the load (or the touch) vanishes before the gripper opens
        let end_hold = t_release.unwrap_or(dur);
        let (lo_i, hi_i) = (
            idx(t, t_transport.unwrap_or(t_grasp) + 0.1),
            idx(t, end_hold - 0.05),
        );
        let mut dropped_at = None;
        // Losing the load counts as a drop only while the object is clearly off the support
        // (setting it down also unloads the wrist, just before the gripper opens).
        let z_grasp = pz[k_closed];
        let aloft = |i: usize| pz[i] - z_grasp > 0.03;
        if let Some(l) = &load {
            let held = percentile(
                &l[idx(t, t_transport.unwrap_or(t_grasp))..hi_i.max(lo_i + 1)],
                75.0,
            );
            evidence.push(format!("held load {held:.2} N"));
            if held > 0.3f64.max(5.0 * noise_n) {
                dropped_at = (lo_i..hi_i)
                    .find(|&i| aloft(i) && l[i] < 0.25 * held)
                    .map(|i| t[i]);
            }
        } else if let Some((tot, _)) = &tact {
            let held = percentile(
                &tot[idx(t, t_transport.unwrap_or(t_grasp))..hi_i.max(lo_i + 1)],
                75.0,
            );
            if held > 1.0 {
                dropped_at = (lo_i..hi_i)
                    .find(|&i| aloft(i) && tot[i] < 0.25 * held)
                    .map(|i| t[i]);
            }
        }
        // Neither load nor touch: a position-controlled gripper closes on to its commanded
        // opening when the part falls out of it. The fall is the opening sinking, while
        // aloft and before release, below the held opening by more than a tenth of it (and
        // more than 3 mm and 4x its own jitter while held).
        let mut fingers_closed_by = None;
        if load.is_none() && tact.is_none() && hi_i > lo_i {
            let k_h = (k_closed + win(0.020)).min(n - 1);
            let settle = &ap[k_h..(k_h + win(0.2)).min(n).max(k_h + 1)];
            let mid = percentile(settle, 50.0);
            let jitter = robust_sigma(settle.iter().map(|x| (x - mid).abs()).collect());
            let thr = (0.1 * held_aperture).max(0.003).max(4.0 * jitter);
            if let Some(i) = (lo_i..hi_i).find(|&i| aloft(i) && ap[i] < held_aperture - thr) {
                // the depth the fingers reached past the threshold is the evidence's strength
                let deepest = ap[i..hi_i].iter().copied().fold(f64::INFINITY, f64::min);
                let by = held_aperture - deepest;
                // a further closing more than twice the grasp's own closing means that first
                // closing was not the grasp (a twitch of the fingers), not that a part fell
                if by <= 2.0 * (open_level - held_aperture) {
                    dropped_at = Some(t[i]);
                    fingers_closed_by = Some((by, thr));
                }
            }
        }
        // the hold is judged from the part before any drop
        if let Some(td) = dropped_at {
            outcome = Outcome::Drop;
            confidence = 0.9;
            match fingers_closed_by {
                Some((by, thr)) => {
                    // twice the threshold or more is as sure as a lost load
                    confidence = (0.5 + 0.2 * by / thr).clamp(0.6, 0.9);
                    evidence.push(format!(
                        "the fingers closed {:.1} mm further at {td:.3} s while aloft (no load or \
                         touch sensing: the part fell out of the gripper)",
                        by * 1e3
                    ));
                }
                None => evidence.push(format!("load lost at {td:.3} s with the gripper closed")),
            }
        } else {
            // place: the last motion that ends where the gripper opens
            let mut t_place_found = None;
            if let Some(tr) = t_release {
                let k_r = idx(t, tr);
                let mut k = k_r;
                while k > 0 && speed[k] < v_hi {
                    k -= 1;
                }
                // k is inside the final descent: its onset
                let mut t_place = onset(t, &speed, k, v_lo, v_hi.min(speed[k].max(v_lo + 0.001)));
                // an operator who overshoots corrects sideways at the end of the descent: a
                // last motion that hardly goes down, right after another, is part of the place
                for _ in 0..3 {
                    let k0 = idx(t, t_place);
                    if k0 >= k || k0 == 0 {
                        break;
                    }
                    let drop_m = pz[k0] - pz[k];
                    let mut kb = k0.saturating_sub(1);
                    while kb > 0 && speed[kb] < v_hi && t[k0] - t[kb] < 0.3 {
                        kb -= 1;
                    }
                    if drop_m > 0.01 || speed[kb] < v_hi || vz[kb] > -0.5 * v_hi {
                        break;
                    }
                    k = kb;
                    t_place = onset(t, &speed, k, v_lo, v_hi.min(speed[k].max(v_lo + 0.001)));
                }
                // at a low joint rate the pause between carrying and setting down can be
                // shorter than the derivative's window: the onset then runs back through the
                // transport; the slowest instant between them is the boundary instead
                if let Some(tt) = t_transport.filter(|tt| t_place <= *tt) {
                    let a = idx(t, tt) + 1;
                    if a < k
                        && let Some(km) = (a..k).min_by(|x, y| speed[*x].total_cmp(&speed[*y]))
                        && speed[km] < 0.5 * v_hi
                    {
                        t_place = t[km];
                    }
                }
                if t_transport.is_some_and(|tt| t_place > tt) {
                    phases.push((Phase::Place, t_place));
                    t_place_found = Some(t_place);
                }
            }
            // slip: the contact centroid moves, or the load rings, while held
            // judged while carried: setting the object down moves the contact and unloads the
            // wrist on purpose
            let carry_end = t_place_found.or(t_release).unwrap_or(dur) - 0.05;
            let (a, b) = (
                idx(t, t_transport.unwrap_or(t_grasp) + 0.05),
                idx(t, carry_end),
            );
            let mut slip_score: f64 = 0.0;
            if let Some((tot, cen)) = &tact
                && b > a + win(0.020)
            {
                let c0 = cen[a];
                let shift = cen[a..b]
                    .iter()
                    .zip(&tot[a..b])
                    .filter(|(_, p)| **p > 1.0)
                    .map(|(c, _)| (c - c0).abs())
                    .fold(0.0, f64::max);
                evidence.push(format!(
                    "contact centroid moved {shift:.2} taxels while held"
                ));
                slip_score = slip_score.max(shift / 1.0);
            }
            if let Some(l) = &load_fast
                && b > a + win(0.020)
            {
                let held = percentile(&l[a..b], 50.0);
                // the load the arm's own vertical acceleration puts on the held mass is not
                // a slip: take it out before looking for transients
                let acc = deriv(&t[a..b], &vz_raw[a..b], h);
                let resid: Vec<f64> = l[a..b]
                    .iter()
                    .zip(&acc)
                    .map(|(x, az)| x - held * az / 9.81)
                    .collect();
                let base = smooth(&resid, win(0.050));
                let ring = resid
                    .iter()
                    .zip(&base)
                    .map(|(x, m)| (x - m).abs())
                    .fold(0.0, f64::max);
                // a transient counts only above the sensor's noise, and relative to a load
                // the sensor can tell from nothing
                let floor = 0.3f64.max(5.0 * noise_n);
                if held > floor {
                    evidence.push(format!(
                        "load transient {:.0} % of the held load",
                        100.0 * ring / held
                    ));
                    if tact.is_none() && ring > 6.0 * noise_n {
                        slip_score = slip_score.max(ring / (0.12 * held));
                    }
                } else {
                    evidence.push(format!(
                        "held load {held:.2} N is within the sensor's noise ({noise_n:.3} N): no slip evidence from the wrench"
                    ));
                }
            }
            if slip_score > 1.0 {
                outcome = Outcome::Slip;
                confidence = (0.5 + slip_score / 4.0).min(1.0);
            } else {
                outcome = Outcome::Success;
                confidence = (1.0 - slip_score / 2.0).clamp(0.5, 1.0);
                if load.is_none() && tact.is_none() {
                    // the fingers stopped on something and never closed further until they
                    // opened (no drop), but a part sliding in them cannot be seen
                    confidence = confidence.min(0.75);
                    evidence.push(
                        "no wrench or touch sensing: held as far as the fingers tell (they never \
                         closed further); a slip cannot be seen (review it)"
                            .into(),
                    );
                }
            }
        }
    }
    if let Some(tr) = t_release {
        phases.push((Phase::Release, tr));
    }
    if let Some(to) = t_opened {
        phases.push((Phase::Retreat, to));
    }
    if let Some(ti) = t_idle {
        phases.push((Phase::Idle, ti));
    }
    // order, clamp and close the spans
    phases.retain(|p| p.1 >= 0.0 && p.1 < dur);
    phases.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mut spans: Vec<PhaseSpan> = Vec::new();
    for (i, (p, st)) in phases.iter().enumerate() {
        let end = phases.get(i + 1).map_or(dur, |x| x.1);
        if let Some(last) = spans.last_mut()
            && last.phase == *p
        {
            last.end_s = end;
            continue;
        }
        spans.push(PhaseSpan {
            phase: *p,
            start_s: if i == 0 { 0.0 } else { *st },
            end_s: end,
        });
    }
    if outcome == Outcome::Miss && spans.iter().any(|s| s.phase == Phase::Lift) {
        outcome = Outcome::Success;
        confidence = 0.3;
    }
    Some((
        Segmentation {
            phases: spans,
            outcome: Some(outcome),
            confidence,
            attempts: vec![Attempt {
                outcome,
                confidence,
                grasp_s: t_grasp,
            }],
            used,
            evidence,
        },
        close_thr,
    ))
}

/// The whole episode as one idle span (nothing to segment), with the reason.
pub(crate) fn unsegmented(
    dur: f64,
    confidence: f64,
    used: Vec<&'static str>,
    why: &str,
) -> Segmentation {
    Segmentation {
        phases: vec![PhaseSpan {
            phase: Phase::Idle,
            start_s: 0.0,
            end_s: dur,
        }],
        outcome: None,
        confidence,
        attempts: Vec::new(),
        used,
        evidence: vec![why.to_string()],
    }
}

pub(crate) fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() - 1) as f64 * p / 100.0).round() as usize]
}

/// A phase sequence as (name, start s, end s), what `crate::eval` scores.
pub fn named(phases: &[PhaseSpan]) -> Vec<(String, f64, f64)> {
    phases
        .iter()
        .map(|p| (p.phase.as_str().to_string(), p.start_s, p.end_s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::{UnitQuaternion, Vector3};

    #[test]
    fn without_load_or_touch_a_drop_is_seen_in_the_fingers() {
        use hal::sim::family::{Family, generate, ur_like};
        let arm = ur_like();
        let (mut drops, mut others) = (0, 0);
        for i in 0..40 {
            let ep = generate(Family::SixDof, 2026, i);
            let mut s = Signals::from_family(&ep);
            s.wrench = None;
            s.tactile = None;
            let seg = segment(&s, &arm);
            if ep.outcome() == Some(Outcome::Drop) {
                drops += 1;
                assert_eq!(seg.outcome, Some(Outcome::Drop), "episode {i}");
                assert!(
                    seg.evidence
                        .iter()
                        .any(|e| e.contains("closed") && e.contains("aloft")),
                    "{:?}",
                    seg.evidence
                );
            } else {
                others += 1;
                assert_ne!(seg.outcome, Some(Outcome::Drop), "episode {i}");
            }
        }
        assert!(drops >= 3 && others >= 20, "{drops} drops, {others} others");
    }

    #[test]
    fn tare_finds_the_bias_and_the_tool_weight_as_the_wrist_turns() {
        let (bias, weight) = (Vector3::new(2.0, -1.5, 3.0), 7.85);
        let rot = |t: f64| UnitQuaternion::from_euler_angles(0.8 * t.sin(), 0.5 * t, 0.3);
        let tw: Vec<f64> = (0..400).map(|i| i as f64 * 0.005).collect();
        let w: Vec<[f64; 6]> = tw
            .iter()
            .map(|&t| {
                let f = bias + rot(t).inverse() * Vector3::new(0.0, 0.0, -weight);
                [f.x, f.y, f.z, 0.0, 0.0, 0.0]
            })
            .collect();
        // only the readings before 1.5 s (the grasp) are used
        let (b, m) = tare(&tw, &w, &rot, 1.5);
        assert!((Vector3::from(b) - bias).norm() < 1e-9, "{b:?}");
        assert!((m - weight).abs() < 1e-9, "{m}");
        // a wrist that does not turn: the weight is not separable, the mean reading is the bias
        let still = |_: f64| UnitQuaternion::identity();
        let (b, m) = tare(&tw, &w, &still, 1.5);
        assert_eq!(m, 0.0);
        let mean: f64 = w.iter().take(300).map(|f| f[2]).sum::<f64>() / 300.0;
        assert!((b[2] - mean).abs() < 1e-9);
        // too few readings: nothing to tare with
        assert_eq!(tare(&tw, &w, &rot, 0.05), ([0.0; 3], 0.0));
    }
}

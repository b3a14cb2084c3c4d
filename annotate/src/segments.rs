//! Task-agnostic segmentation (`shared/design/taxonomy.md`, "Tasks that are not pick and
//! place"): when no grasp anchors the phase names — no gripper, a part held from the start,
//! a fixed tool — the episode is split where motion or contact changes:
//!
//! - **motion**: the end effector starts moving after a rest, or comes to a rest that lasts
//!   (rests shorter than [`MIN_REST_S`] are hesitations, not boundaries); onsets and ends are
//!   placed by extrapolating √speed to zero, as the pick-and-place rules do;
//! - **contact**: the wrist's load (tared on the first rest, gravity-compensated through the
//!   arm's orientation, as a vector in the world frame) departs from or returns to its unloaded
//!   level by more than the larger of 1 N and 8× the sensor's own noise, for at least 0.1 s;
//!   the boundary is where it left (or regained) the noise band;
//! - **gripper**: the fingers start opening or closing.
//!
//! Changes closer than [`MERGE_S`] are one boundary (the earliest). Rests are named `idle`,
//! everything else `segment`; coming to rest while in contact is not a boundary (a part
//! pressed into place, a tool held on a surface: the contact's segment goes on). Each boundary's confidence grows with how far its evidence
//! clears its threshold.

use crate::segment::{
    Segmentation, Signals, deriv, first_from, idx, median_dt, norm3, offset, onset, percentile,
    resample, robust_sigma, smooth, tare, tared_load, unsegmented,
};
use hal::robot::Kinematics;
use hal::sim::plan::{Phase, PhaseSpan};

/// A rest shorter than this (s) inside a motion is a hesitation, not a boundary.
pub const MIN_REST_S: f64 = 1.0;
/// Boundaries closer than this (s) are one.
pub const MERGE_S: f64 = 0.2;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    MotionStart,
    MotionEnd,
    ContactOn,
    ContactOff,
    Gripper,
}

/// Segment `s` by its changes in motion and contact; `why` says why the pick-and-place rules
/// did not apply.
pub fn segments(s: &Signals, arm: &dyn Kinematics, why: &str) -> Segmentation {
    let dur = s.duration_s;
    // no joint states: the wrench's own times (at most 200 Hz) are the time base, the sensor
    // does not turn (as far as anything can tell), and only contact changes are boundaries
    let wrench_only = s.t.is_empty();
    let base: Vec<f64> = if wrench_only {
        let mut v: Vec<f64> = Vec::new();
        for &x in s.wrench.as_ref().map_or(&[][..], |w| &w.0[..]) {
            if v.last().is_none_or(|l| x - l >= 0.005) {
                v.push(x);
            }
        }
        v
    } else {
        s.t.clone()
    };
    let t = &base;
    let n = t.len();
    let mut used = if wrench_only {
        Vec::new()
    } else {
        vec!["joint_states"]
    };
    let mut evidence = vec![format!(
        "{why}: segments from {}",
        if wrench_only {
            "contact alone"
        } else {
            "motion and contact"
        }
    )];
    if n < 50 {
        return unsegmented(dur, 0.0, used, "too few samples to segment");
    }
    let dt = median_dt(t);
    let win = |seconds: f64| ((seconds / dt).round() as usize).max(1);
    let poses: Vec<nalgebra::Isometry3<f64>> = if wrench_only {
        vec![nalgebra::Isometry3::identity(); n]
    } else {
        s.q.iter().map(|q| arm.fk(q)).collect()
    };
    let h = win(0.010);
    let axis = |f: fn(&nalgebra::Vector3<f64>) -> f64| -> Vec<f64> {
        deriv(
            t,
            &poses
                .iter()
                .map(|p| f(&p.translation.vector))
                .collect::<Vec<_>>(),
            h,
        )
    };
    let (vx, vy, vz) = (axis(|v| v.x), axis(|v| v.y), axis(|v| v.z));
    let speed = smooth(&norm3(&vx, &vy, &vz), win(0.025));
    // a motion: above 3 cm/s, or a tenth of the episode's fast speed for a slow task
    let v_hi = (0.1 * percentile(&speed, 99.0)).clamp(0.008, 0.03);
    let v_lo = 0.15 * v_hi;
    let mut events: Vec<(f64, Kind, f64)> = Vec::new();
    // (from, to) of each contact run: a rest inside one is part of the contact
    let mut contact_spans: Vec<(f64, f64)> = Vec::new();
    // the first motion's onset: the unloaded wrist before it is where the sensor is tared
    let first_motion =
        first_from(&speed, 0, |v| v > v_hi).map_or(dur, |k0| onset(t, &speed, k0, v_lo, v_hi));

    // contact: the tared load vector's departures from its unloaded level
    if let Some((tw, w)) = &s.wrench
        && tw.len() > 20
    {
        used.push("wrench");
        let rot = |tt: f64| poses[idx(t, tt)].rotation;
        // (wrench only: nothing says when the first motion is; the first 0.3 s)
        let until = if wrench_only {
            t[0] + 0.3
        } else {
            (first_motion - 0.05).max(t[0] + 0.2)
        };
        let (bias, tool_n) = tare(tw, w, &rot, until);
        let load = tared_load(tw, w, &rot, bias, tool_n);
        let comp = |c: usize| -> Vec<f64> {
            smooth(
                &resample(tw, &load.iter().map(|v| v[c]).collect::<Vec<_>>(), t),
                win(0.010),
            )
        };
        let (fx, fy, fz) = (comp(0), comp(1), comp(2));
        let k_end = idx(t, until);
        let base = |v: &[f64]| {
            if k_end > 5 {
                percentile(&v[..k_end], 50.0)
            } else {
                0.0
            }
        };
        let (bx, by, bz) = (base(&fx), base(&fy), base(&fz));
        let dev: Vec<f64> = (0..n)
            .map(|i| ((fx[i] - bx).powi(2) + (fy[i] - by).powi(2) + (fz[i] - bz).powi(2)).sqrt())
            .collect();
        let noise = if k_end > win(0.2) {
            robust_sigma(dev[..k_end].to_vec())
        } else {
            0.05
        };
        let on = 1.0f64.max(8.0 * noise);
        let band = (3.0 * noise).max(0.3 * on);
        let min_len = win(0.1);
        let mut i = 0;
        let mut contacts = 0;
        while let Some(a) = first_from(&dev, i, |x| x > on) {
            let b = first_from(&dev, a, |x| x <= on).unwrap_or(n);
            if b - a < min_len {
                i = b.max(a + 1);
                continue;
            }
            // runs closer than the merge window are one contact
            let mut b = b;
            while let Some(a2) = first_from(&dev, b, |x| x > on) {
                if t[a2] - t[b.min(n - 1)] > MERGE_S {
                    break;
                }
                b = first_from(&dev, a2, |x| x <= on).unwrap_or(n);
            }
            let peak = dev[a..b].iter().copied().fold(0.0, f64::max);
            let c = (0.5 + 0.5 * (peak / on - 1.0).min(4.0) / 4.0).clamp(0.5, 0.99);
            let mut s0 = a;
            while s0 > 0 && dev[s0 - 1] > band {
                s0 -= 1;
            }
            events.push((t[s0], Kind::ContactOn, c));
            contacts += 1;
            let mut until = dur;
            if b < n {
                let mut e = b;
                while e + 1 < n && dev[e] > band {
                    e += 1;
                }
                events.push((t[e], Kind::ContactOff, c));
                until = t[e];
            }
            contact_spans.push((t[s0], until));
            i = b;
            if i >= n {
                break;
            }
        }
        evidence.push(format!(
            "contact above {on:.2} N (noise {noise:.3} N): {contacts} run(s)"
        ));
    }

    // the gripper's own motions
    if !wrench_only && s.aperture.len() == n {
        let rate: Vec<f64> = deriv(t, &s.aperture, h).iter().map(|v| v.abs()).collect();
        let thr = 0.3 * percentile(&rate, 99.5);
        if thr > 1e-3 {
            let mut i = 0;
            while let Some(k0) = first_from(&rate, i, |v| v > thr) {
                events.push((
                    onset(t, &rate, k0, 0.05 * thr, 0.4 * thr),
                    Kind::Gripper,
                    0.9,
                ));
                i = first_from(&rate, k0, |v| v < 0.05 * thr).unwrap_or(n);
                if i >= n {
                    break;
                }
            }
            used.push("gripper");
        }
    }

    // motion runs, with rests shorter than MIN_REST_S inside them
    // start, end, peak, whether its end is a boundary
    let mut runs: Vec<(f64, f64, f64, bool)> = Vec::new();
    let mut k = 0;
    while let Some(k0) = first_from(&speed, k, |v| v > v_hi) {
        let start = onset(t, &speed, k0, v_lo, v_hi);
        let k1 = first_from(&speed, k0, |v| v <= v_hi).unwrap_or(n - 1);
        let end = offset(t, &speed, k1.saturating_sub(1).max(k0), v_lo, v_hi);
        let peak = speed[k0..=k1.max(k0)].iter().copied().fold(0.0, f64::max);
        // a short rest is a hesitation, unless the gripper or a contact changed in it:
        // then the motion that follows starts a new segment (the pause itself is not one)
        let changed = |a: f64, b: f64| events.iter().any(|e| e.0 >= a - MERGE_S && e.0 <= b);
        match runs.last_mut() {
            Some(last) if start - last.1 < MIN_REST_S && !changed(last.1, start) => {
                last.1 = end;
                last.2 = last.2.max(peak);
            }
            Some(last) if start - last.1 < MIN_REST_S => {
                last.3 = false;
                runs.push((start, end, peak, true));
            }
            _ => runs.push((start, end, peak, true)),
        }
        k = k1.max(k0 + 1);
        if k >= n {
            break;
        }
    }
    let gripper_moves: Vec<f64> = events
        .iter()
        .filter(|e| e.1 == Kind::Gripper)
        .map(|e| e.0)
        .collect();
    let mut motion_events = Vec::new();
    for (a, b, peak, end_counts) in &runs {
        let c = (0.5 + 0.5 * (peak / v_hi - 1.0).min(4.0) / 4.0).clamp(0.5, 0.99);
        if *a > 0.05 {
            motion_events.push((*a, Kind::MotionStart, c));
        }
        // coming to rest while pressing on something (a peg held in its hole, a tool held
        // against a surface) is not idle: the contact segment goes on until the contact or
        // the gripper changes
        // (a gripper that opens ends that: what the wrist feels after it let go of a part is
        // the part's weight gone, not a contact)
        let in_contact = contact_spans.iter().any(|(on, off)| {
            let off = gripper_moves
                .iter()
                .copied()
                .find(|g| g > on)
                .map_or(*off, |g| g.min(*off));
            *on + MERGE_S < *b && *b < off - MERGE_S
        });
        if *b < dur - 0.05 && *end_counts && !in_contact {
            motion_events.push((*b, Kind::MotionEnd, c));
        }
    }
    events.extend(motion_events);

    events.retain(|e| e.0 > 0.0 && e.0 < dur);
    events.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut kept: Vec<(f64, Kind, f64)> = Vec::new();
    for e in events {
        match kept.last() {
            Some(last) if e.0 - last.0 < MERGE_S => {}
            _ => kept.push(e),
        }
    }
    // spans: at rest (before the first motion start, after a lasting motion end) is idle
    let mut phases = Vec::new();
    let mut confs = Vec::new();
    let mut moving = false;
    let mut start = 0.0;
    let mut phase = Phase::Idle;
    for (tb, kind, c) in &kept {
        phases.push(PhaseSpan {
            phase,
            start_s: start,
            end_s: *tb,
        });
        confs.push(*c);
        match kind {
            Kind::MotionStart => moving = true,
            Kind::MotionEnd => moving = false,
            _ => {}
        }
        phase = if moving || !matches!(kind, Kind::MotionEnd) {
            Phase::Segment
        } else {
            Phase::Idle
        };
        start = *tb;
    }
    phases.push(PhaseSpan {
        phase,
        start_s: start,
        end_s: dur,
    });
    evidence.push(format!(
        "{} boundaries: {}",
        kept.len(),
        kept.iter()
            .map(|(tb, k, _)| format!("{tb:.3} s {k:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    // the segmentation's confidence: its weakest boundary's
    let confidence = confs.iter().copied().fold(1.0, f64::min);
    Segmentation {
        phases,
        outcome: None,
        confidence,
        attempts: Vec::new(),
        used,
        evidence,
    }
}

#[cfg(test)]
mod tests {
    use crate::eval::{match_boundaries, transitions};
    use crate::segment::{Signals, named, segment};
    use hal::sim::family::{Family, FamilyEpisode, generate, ur_like};
    use hal::sim::plan::{Outcome, Phase};

    fn signals(ep: &FamilyEpisode) -> Signals {
        Signals::from_family(ep)
    }

    #[test]
    fn held_from_start_and_gripperless_tasks_get_segments_at_their_changes() {
        let arm = ur_like();
        for family in [Family::Insertion, Family::Wipe] {
            for i in 0..3 {
                let ep = generate(family, 11, i);
                let seg = segment(&signals(&ep), &arm);
                assert_eq!(seg.outcome, None, "{family:?}: no grasp, no outcome");
                assert!(seg.attempts.is_empty());
                assert!(seg.phases.iter().any(|p| p.phase == Phase::Segment));
                let m = match_boundaries(
                    &transitions(&named(&ep.phases)),
                    &transitions(&named(&seg.phases)),
                    Some(0.3),
                );
                assert_eq!(
                    m.misses, 0,
                    "{family:?} {i}: {:?} vs {:?}",
                    ep.phases, seg.phases
                );
                assert!(m.reference >= 4);
            }
        }
        // a peg pressed into its hole comes to rest while in contact: that rest is not idle
        // (no boundary until the gripper lets go), so nothing is invented between
        for i in 0..10 {
            let ep = generate(Family::Insertion, 11, i);
            let seg = segment(&signals(&ep), &arm);
            let m = match_boundaries(
                &transitions(&named(&ep.phases)),
                &transitions(&named(&seg.phases)),
                Some(0.3),
            );
            assert_eq!(
                (m.misses, m.false_alarms),
                (0, 0),
                "insertion {i}: {:?} vs {:?}",
                ep.phases,
                seg.phases
            );
        }
        // without the wrench the insertion's contact is invisible: fewer boundaries, still no
        // invented outcome
        let ep = generate(Family::Insertion, 11, 0);
        let mut s = signals(&ep);
        s.wrench = None;
        let seg = segment(&s, &arm);
        assert_eq!(seg.outcome, None);
        assert!(!seg.used.contains(&"wrench"));
    }

    #[test]
    fn a_wrench_alone_still_gives_the_contact_boundaries() {
        let arm = ur_like();
        let ep = generate(Family::Wipe, 11, 1);
        let mut s = signals(&ep);
        s.t.clear();
        s.q.clear();
        s.aperture.clear();
        let seg = segment(&s, &arm);
        assert_eq!(seg.outcome, None);
        assert_eq!(seg.used, vec!["wrench"]);
        // the truth's contact on and off (its 2nd and 3rd boundaries) are found within 0.1 s
        let truth = transitions(&named(&ep.phases));
        let got = transitions(&named(&seg.phases));
        for b in &truth[1..3] {
            assert!(
                got.iter().any(|g| (g.2 - b.2).abs() < 0.1),
                "{b:?} not in {got:?} ({:?})",
                seg.evidence
            );
        }
    }

    #[test]
    fn a_regrasp_is_a_second_attempt_with_its_own_outcome() {
        let arm = ur_like();
        for i in 0..4 {
            let ep = generate(Family::Regrasp, 11, i);
            let seg = segment(&signals(&ep), &arm);
            let got: Vec<Outcome> = seg.attempts.iter().map(|a| a.outcome).collect();
            assert_eq!(got, ep.attempts, "episode {i}: {:?}", seg.evidence);
            assert_eq!(seg.outcome, Some(Outcome::Success));
            let grasps = seg
                .phases
                .iter()
                .filter(|p| p.phase == Phase::Grasp)
                .count();
            assert_eq!(grasps, 2);
        }
    }
}

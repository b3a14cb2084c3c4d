//! Segmentation accuracy against the simulator's ground truth over seeded episodes (noise,
//! hesitations, injected slips, drops and misses): boundary error, misses, false alarms, the
//! outcome confusion matrix, ECE, and the same for variants of the same signals: without
//! tactile, without wrench, joints only, joint states at 30 Hz, an untared force sensor, a
//! slow (2.5×) and a very slow (5×) operator.
//! Then the same scores per task family of the second simulated robot (a UR-like 6-DoF arm
//! from its URDF, no tactile pads, an untared wrist sensor: `hal::sim::family`): pick and
//! place, rough teleoperation, pull-off, regrasp, and the task-agnostic insertion (part held
//! from the start) and wipe (no gripper), with macro-F1 and, for the task-agnostic ones,
//! boundary recall within 1 s.
//! Run: `cargo bench -p demotape-annotate --bench segmentation [-- --episodes N --family-episodes M]`;
//! `DEBUG_VARIANT=<variant>` prints the first episodes' true and predicted phases.
//! Last line: JSON.

use annotate::eval::{match_boundaries, transitions};
use annotate::segment::{Signals, named, segment};
use hal::Payload;
use hal::kinematics::ArmModel;
use hal::sim::plan::Outcome;
use hal::sim::{SimConfig, SimEpisode, Truth};
use std::collections::BTreeMap;
use std::time::Instant;

fn signals(cfg: &SimConfig, index: u64) -> (Signals, Truth) {
    let mut ep = SimEpisode::new(cfg, index, 10.0, 1_700_000_000_000_000_000);
    let truth = ep.truth();
    let streams = ep.streams().to_vec();
    let cap: BTreeMap<usize, &Vec<u64>> = streams
        .iter()
        .enumerate()
        .map(|(i, s)| {
            (
                i,
                &truth
                    .streams
                    .iter()
                    .find(|t| t.topic == s.topic)
                    .unwrap()
                    .capture_rel_ns,
            )
        })
        .collect();
    let topic = |i: usize| streams[i].topic.as_str();
    let mut s = Signals {
        duration_s: 10.0,
        ..Default::default()
    };
    let mut w = (Vec::new(), Vec::new());
    let mut tact: BTreeMap<u64, (f64, f64, f64, f64)> = BTreeMap::new(); // t -> (total, wsum, wrow, n)
    let mut v = Vec::new();
    while ep.next_samples(&mut v) {
        for smp in v.drain(..) {
            let t = cap[&smp.stream][smp.sequence as usize] as f64 * 1e-9;
            match (&smp.payload, topic(smp.stream)) {
                (Payload::JointState(j), _) => {
                    s.t.push(t);
                    s.q.push(j.position[..7].to_vec());
                    s.aperture.push(2.0 * j.position[7]);
                }
                (Payload::Wrench(x), "/wrist/right/wrench") => {
                    let f = &x.wrench;
                    w.0.push(t);
                    w.1.push([
                        f.force.x, f.force.y, f.force.z, f.torque.x, f.torque.y, f.torque.z,
                    ]);
                }
                (Payload::Tactile(p), tp)
                    if tp == "/tactile/right_a_tip" || tp == "/tactile/right_b_tip" =>
                {
                    let e = tact.entry((t * 1e9) as u64).or_default();
                    for (k, val) in p.pressure.iter().enumerate() {
                        let val = f64::from(*val);
                        e.0 += val;
                        if tp.ends_with("a_tip") && val > 0.5 {
                            e.1 += val;
                            e.2 += val * (k / p.cols as usize) as f64;
                        }
                    }
                    e.3 += 1.0;
                }
                _ => {}
            }
        }
    }
    s.wrench = Some(w);
    let tt: Vec<f64> = tact.keys().map(|k| *k as f64 * 1e-9).collect();
    let total: Vec<f64> = tact.values().map(|e| e.0).collect();
    let mut last = 0.0;
    let cen: Vec<f64> = tact
        .values()
        .map(|e| {
            if e.1 > 5.0 {
                last = e.2 / e.1;
            }
            last
        })
        .collect();
    s.tactile = Some((tt, total, cen));
    (s, truth)
}

fn name(o: Outcome) -> &'static str {
    match o {
        Outcome::Success => "success",
        Outcome::Slip => "slip",
        Outcome::Drop => "drop",
        Outcome::Miss => "miss",
    }
}

struct Run {
    errors: Vec<f64>,
    misses: usize,
    false_alarms: usize,
    confusion: BTreeMap<(&'static str, &'static str), usize>,
    correct: usize,
    seconds: f64,
    /// missed transitions by kind
    missed: BTreeMap<String, usize>,
    /// (outcome confidence, right) per episode
    calibration: Vec<(f64, bool)>,
    /// seconds of data segmented
    data_s: f64,
}

fn run(all: &[(Signals, Truth)], variant: &str, arm: &ArmModel) -> Run {
    let mut r = Run {
        errors: Vec::new(),
        misses: 0,
        false_alarms: 0,
        confusion: BTreeMap::new(),
        correct: 0,
        seconds: 0.0,
        missed: BTreeMap::new(),
        calibration: Vec::new(),
        data_s: 0.0,
    };
    for (s, truth) in all {
        let mut s = s.clone();
        let mut truth = truth.clone();
        match variant {
            "no_tactile" => s.tactile = None,
            "untared_no_tactile" => {
                s.tactile = None;
                untare(&mut s, arm);
            }
            "no_wrench" => s.wrench = None,
            "joints_only" => {
                s.wrench = None;
                s.tactile = None;
            }
            // joint states at ~30 Hz (every 17th of 500 Hz), as LeRobot arms record them
            "joints_30hz" => {
                fn keep<T>(v: &mut Vec<T>) {
                    let mut i = 0;
                    v.retain(|_| {
                        i += 1;
                        (i - 1) % 17 == 0
                    });
                }
                keep(&mut s.t);
                keep(&mut s.q);
                keep(&mut s.aperture);
            }
            // an untared wrist sensor: the gripper's own weight (0.8 kg) seen in the sensor
            // frame as the wrist turns, a constant bias and a slow drift
            "untared" => untare(&mut s, arm),
            // a slow, careful operator: every motion 2.5× (or 5×) slower
            "slow_teleop" | "very_slow_teleop" => {
                let k = if variant == "slow_teleop" { 2.5 } else { 5.0 };
                s.t.iter_mut().for_each(|x| *x *= k);
                s.duration_s *= k;
                if let Some((tw, _)) = &mut s.wrench {
                    tw.iter_mut().for_each(|x| *x *= k);
                }
                if let Some((tt, _, _)) = &mut s.tactile {
                    tt.iter_mut().for_each(|x| *x *= k);
                }
                for p in &mut truth.phases {
                    p.start_s *= k;
                    p.end_s *= k;
                }
            }
            _ => {}
        }
        fn untare(s: &mut Signals, arm: &ArmModel) {
            {
                if let Some((tw, w)) = &mut s.wrench {
                    let mut k = 0;
                    for (tt, f) in tw.iter().zip(w.iter_mut()) {
                        while k + 1 < s.t.len() && s.t[k + 1] <= *tt {
                            k += 1;
                        }
                        let r = arm.fk(&s.q[k]).rotation;
                        let g = r.inverse() * nalgebra::Vector3::new(0.0, 0.0, -0.8 * 9.81);
                        f[0] += g.x + 2.0;
                        f[1] += g.y - 1.5;
                        f[2] += g.z + 3.0 + 0.05 * tt;
                    }
                }
            }
        }
        r.data_s += s.duration_s;
        let t = Instant::now();
        let seg = segment(&s, arm);
        r.seconds += t.elapsed().as_secs_f64();
        if std::env::var("DEBUG_VARIANT").is_ok_and(|v| v == variant) && r.errors.len() < 40 {
            eprintln!(
                "truth {:?}",
                named(&truth.phases)
                    .iter()
                    .map(|p| (p.0.clone(), (p.1 * 100.0).round() / 100.0))
                    .collect::<Vec<_>>()
            );
            eprintln!(
                "pred  {:?} {:?} {:?}",
                named(&seg.phases)
                    .iter()
                    .map(|p| (p.0.clone(), (p.1 * 100.0).round() / 100.0))
                    .collect::<Vec<_>>(),
                seg.outcome,
                seg.evidence
            );
        }
        let e = match_boundaries(
            &transitions(&named(&truth.phases)),
            &transitions(&named(&seg.phases)),
            None,
        );
        r.errors.extend(e.errors_ms);
        r.misses += e.misses;
        for m in e.missed {
            *r.missed.entry(m).or_default() += 1;
        }
        r.false_alarms += e.false_alarms;
        let predicted = seg.outcome.map_or("none", name);
        *r.confusion
            .entry((name(truth.outcome), predicted))
            .or_default() += 1;
        r.correct += (Some(truth.outcome) == seg.outcome) as usize;
        r.calibration
            .push((seg.confidence, Some(truth.outcome) == seg.outcome));
    }
    r.errors.sort_by(f64::total_cmp);
    r
}

fn q(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v[((v.len() - 1) as f64 * p).round() as usize]
    }
}

/// The families of the second robot: per family, the episode scores `demotape eval` sums up.
fn families(n: u64, json: &mut Vec<(String, String)>) {
    use annotate::eval::{EpisodeScore, summarize};
    use hal::sim::family::{Family, generate, ur_like};
    let arm = ur_like();
    for family in Family::ALL {
        let t0 = Instant::now();
        let eps: Vec<_> = (0..n).map(|i| generate(family, 2025, i)).collect();
        let gen_s = t0.elapsed().as_secs_f64();
        let mut scores = Vec::new();
        let mut within_1s = annotate::eval::BoundaryMatch::default();
        let (mut seconds, mut data_s) = (0.0, 0.0);
        for (i, ep) in eps.iter().enumerate() {
            let s = Signals::from_family(ep);
            let t = Instant::now();
            let seg = segment(&s, &arm);
            seconds += t.elapsed().as_secs_f64();
            data_s += ep.duration_s;
            let (rt, pt) = (
                transitions(&named(&ep.phases)),
                transitions(&named(&seg.phases)),
            );
            if std::env::var("DEBUG_VARIANT").is_ok_and(|v| v == family.as_str()) && i < 12 {
                let show = |v: &[(String, String, f64)]| {
                    v.iter()
                        .map(|(a, b, t)| format!("{a}>{b} {t:.2}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                eprintln!("truth {:?}: {}", ep.attempts, show(&rt));
                eprintln!(
                    "pred  {:?} {:.2}: {}",
                    seg.outcome,
                    seg.confidence,
                    show(&pt)
                );
                eprintln!("      {:?}", seg.evidence);
            }
            let m1 = match_boundaries(&rt, &pt, Some(1.0));
            within_1s.reference += m1.reference;
            within_1s.misses += m1.misses;
            within_1s.errors_ms.extend(m1.errors_ms);
            scores.push(EpisodeScore {
                episode: format!("{}/{i}", family.as_str()).into(),
                group: family.as_str().into(),
                reference: "truth".into(),
                boundaries: match_boundaries(&rt, &pt, None),
                outcome_reference: ep.outcome().map(|o| name(o).to_string()),
                outcome_predicted: ep
                    .outcome()
                    .map(|_| seg.outcome.map_or("none", name).to_string()),
                confidence: ep.outcome().map(|_| seg.confidence),
            });
        }
        let sum = summarize(&scores.iter().collect::<Vec<_>>());
        let recall_1s = within_1s.errors_ms.len() as f64 / within_1s.reference.max(1) as f64;
        let f = |x: Option<f64>, k: f64| x.map_or("-".to_string(), |v| format!("{:.1}", v * k));
        println!(
            "{:<12} boundary error median {} ms, p95 {} ms over {} boundaries; misses {}, false alarms {}; recall within 1 s {:.1} %; outcome accuracy {} %, macro-F1 {}, ECE {}; {:.0}x real time on one core ({} episodes generated in {:.1} s)",
            family.as_str(),
            f(sum.boundary_median_ms, 1.0),
            f(sum.boundary_p95_ms, 1.0),
            sum.boundaries,
            sum.misses,
            sum.false_alarms,
            recall_1s * 100.0,
            f(sum.accuracy, 100.0),
            sum.macro_f1.map_or("-".into(), |v| format!("{v:.3}")),
            sum.ece.map_or("-".into(), |v| format!("{v:.3}")),
            data_s / seconds,
            n,
            gen_s,
        );
        let mut missed: BTreeMap<String, usize> = BTreeMap::new();
        for sc in &scores {
            for m in &sc.boundaries.missed {
                *missed.entry(m.clone()).or_default() += 1;
            }
        }
        if !missed.is_empty() {
            let m: Vec<String> = missed.iter().map(|(k, n)| format!("{k} {n}")).collect();
            println!("  missed: {}", m.join(", "));
        }
        if !sum.confusion.is_empty() && !family.task_agnostic() {
            println!("  confusion (truth → predicted): {:?}", sum.confusion);
        }
        let js = |x: Option<f64>| x.map_or("null".to_string(), |v| format!("{v:.4}"));
        json.push((
            format!("family_{}", family.as_str()),
            format!(
                "{{\"boundary_ms\":{{\"median\":{},\"p95\":{}}},\"misses\":{},\"false_alarms\":{},\"recall_within_1s\":{:.4},\"outcome_accuracy\":{},\"macro_f1\":{},\"ece\":{},\"realtime_factor_per_core\":{:.0}}}",
                js(sum.boundary_median_ms),
                js(sum.boundary_p95_ms),
                sum.misses,
                sum.false_alarms,
                recall_1s,
                js(sum.accuracy),
                js(sum.macro_f1),
                js(sum.ece),
                data_s / seconds
            ),
        ));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args
        .iter()
        .position(|a| a == "--episodes")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    // cameras are irrelevant to segmentation: leave them out to generate faster
    let cfg = SimConfig {
        seed: 2024,
        rgb_cameras: vec![],
        depth_cameras: vec![],
        ..SimConfig::default()
    };
    let arm = ArmModel::sim_default("right_arm_");
    let t = Instant::now();
    let all: Vec<(Signals, Truth)> = (0..n).map(|i| signals(&cfg, i)).collect();
    println!(
        "generated {n} episodes of 10 s in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let mut json: Vec<(String, String)> = Vec::new();
    for variant in [
        "all",
        "no_tactile",
        "no_wrench",
        "joints_30hz",
        "untared",
        "untared_no_tactile",
        "joints_only",
        "slow_teleop",
        "very_slow_teleop",
    ] {
        let r = run(&all, variant, &arm);
        let acc = r.correct as f64 / all.len() as f64;
        let rt = r.data_s / r.seconds;
        let ece = annotate::eval::ece(&r.calibration, 10).unwrap_or(f64::NAN);
        println!(
            "{variant:<11} boundary error median {:.1} ms, p95 {:.1} ms over {} boundaries; misses {}, false alarms {}; outcome accuracy {:.1} %, ECE {:.3}; {:.0}x real time on one core",
            q(&r.errors, 0.5),
            q(&r.errors, 0.95),
            r.errors.len(),
            r.misses,
            r.false_alarms,
            acc * 100.0,
            ece,
            rt
        );
        if !r.missed.is_empty() {
            let m: Vec<String> = r.missed.iter().map(|(k, n)| format!("{k} {n}")).collect();
            println!("  missed: {}", m.join(", "));
        }
        let labels = ["success", "slip", "drop", "miss"];
        if variant == "all" || variant == "no_tactile" {
            println!(
                "  confusion (rows truth, columns predicted): {:>8} {:>8} {:>8} {:>8}",
                labels[0], labels[1], labels[2], labels[3]
            );
            for a in labels {
                let row: Vec<String> = labels
                    .iter()
                    .map(|b| format!("{:>8}", r.confusion.get(&(a, *b)).copied().unwrap_or(0)))
                    .collect();
                println!("  {a:>41} {}", row.join(" "));
            }
        }
        json.push((variant.to_string(), format!(
            "{{\"boundary_ms\":{{\"median\":{:.2},\"p95\":{:.2}}},\"misses\":{},\"false_alarms\":{},\"outcome_accuracy\":{:.4},\"ece\":{:.4},\"realtime_factor_per_core\":{:.0}}}",
            q(&r.errors, 0.5), q(&r.errors, 0.95), r.misses, r.false_alarms, acc, ece, rt
        )));
    }
    let fam_n: u64 = args
        .iter()
        .position(|a| a == "--family-episodes")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    families(fam_n, &mut json);
    let main = &json[0].1;
    let inner = &main[1..main.len() - 1];
    let variants: Vec<String> = json[1..]
        .iter()
        .map(|(v, j)| format!("\"{v}\":{j}"))
        .collect();
    println!(
        "{{\"bench\":\"segmentation\",\"episodes\":{n},{inner},\"variants\":{{{}}}}}",
        variants.join(",")
    );
}

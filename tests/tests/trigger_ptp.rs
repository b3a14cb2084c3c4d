//! Hardware-triggered cameras and PTP-stamped devices, end to end: a simulated trigger board
//! on a pseudo-terminal pulses at each exposure of the head camera (whose frames carry only
//! a host receive stamp, or a coarse counter), the recorder reads the pulses through the
//! serial driver and stamps each frame from its pulse; two force-torque sensors claim PTP
//! time, one honestly, one drifting 50 ppm. Every recorded stamp is checked against the
//! simulator's truth.

use demotape_e2e::{percentile, record_sim_with};
use hal::sim::{FrameStamp, SimBoard, SimBoards, SimPtp, SimTriggerBoard, Truth};
use recorder::timing::{PtpEntry, TriggerEntry};
use recorder::writer::EpisodeSummary;
use std::collections::{BTreeMap, HashSet};

const CAMERA: &str = "/camera/head/image_raw";
const DEPTH: &str = "/camera/head/depth";
const PULSES: &str = "/trigger/trigger_board/line0";

/// (topic, sequence) → (log_time, header.stamp) of every message on the topics.
fn stamps(summary: &EpisodeSummary, topics: &[&str]) -> BTreeMap<(String, u64), (u64, u64)> {
    let bytes = std::fs::read(&summary.path).unwrap();
    let mut out = BTreeMap::new();
    for m in mcap::MessageStream::new(&bytes).unwrap() {
        let m = m.unwrap();
        if !topics.contains(&m.channel.topic.as_str()) {
            continue;
        }
        // header.stamp: the first 8 bytes after the 4-byte CDR encapsulation
        let d = &m.data;
        let sec = i32::from_le_bytes(d[4..8].try_into().unwrap());
        let nsec = u32::from_le_bytes(d[8..12].try_into().unwrap());
        let header = sec as u64 * 1_000_000_000 + nsec as u64;
        out.insert(
            (m.channel.topic.clone(), u64::from(m.sequence)),
            (m.log_time, header),
        );
    }
    out
}

fn capture(truth: &Truth, topic: &str) -> Vec<u64> {
    let s = truth.streams.iter().find(|s| s.topic == topic).unwrap();
    s.capture_rel_ns.iter().map(|c| truth.t0_ns + c).collect()
}

fn trigger_board(frame_stamp: FrameStamp, frame_drop: f64, pulse_drop: f64) -> SimBoards {
    SimBoards::List(vec![SimBoard::Trigger(SimTriggerBoard {
        cameras: vec!["head".into()],
        frame_stamp,
        frame_drop,
        pulse_drop,
        ..Default::default()
    })])
}

#[test]
fn triggered_frames_carry_their_pulse_time_and_ptp_devices_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let duration = 14.0;
    let (summary, truth) = record_sim_with(dir.path(), "small", 5, 0, 1, duration, |c| {
        c.sim.boards = trigger_board(FrameStamp::Receive, 0.0, 0.0);
        c.sim.ptp = vec![
            SimPtp {
                device: "ft_right".into(),
                servo_error_us: 1.0,
                drift_ppm: 0.0,
            },
            SimPtp {
                device: "ft_left".into(),
                servo_error_us: 1.0,
                drift_ppm: 50.0,
            },
        ];
        let ptp = |device: &str| PtpEntry {
            device: device.into(),
            timescale: Default::default(),
            servo_error_us: 2.0,
            max_drift_ppm: 5.0,
        };
        c.sync.ptp = vec![ptp("ft_right"), ptp("ft_left")];
    })
    .remove(0);

    // -- the triggered camera
    let rec = stamps(&summary, &[CAMERA, DEPTH, PULSES]);
    let cap = capture(&truth, CAMERA);
    // The board's clock fit rests on its pulses and its heartbeats (200 a second): it
    // settles within the first second; score after that, as loads.md does.
    let score_from = truth.t0_ns + 2_000_000_000;
    let mut errors = Vec::new();
    let mut frames = 0;
    for ((topic, seq), (log, header)) in &rec {
        if topic == PULSES {
            continue;
        }
        frames += 1;
        assert_eq!(log, header, "{topic} {seq}: log_time is header.stamp");
        if topic == DEPTH {
            let rgb = rec[&(CAMERA.to_string(), *seq)];
            assert_eq!(rgb.0, *log, "depth {seq} has the time of its RGB frame");
            continue;
        }
        let want = cap[*seq as usize];
        if want >= score_from {
            errors.push(*log as f64 - want as f64);
            if std::env::var_os("DEBUG_T").is_some() {
                eprintln!(
                    "{seq} {:.3} s {:.1} µs",
                    (want - truth.t0_ns) as f64 / 1e9,
                    (*log as f64 - want as f64) / 1e3
                );
            }
        }
    }
    let delivered = cap.len();
    assert_eq!(frames, 2 * delivered, "every RGB and depth frame recorded");
    // The pulses are mapped through the board's clock fit, which rests on one-way
    // messages: the pty's minimum latency (µs, constant) is in every stamp and no one-way
    // method can see it. Measure against it, and bound it.
    let latency = errors.iter().copied().fold(f64::INFINITY, f64::min);
    let mut rel: Vec<f64> = errors.iter().map(|e| e - latency).collect();
    let p99 = percentile(&mut rel, 99.0);
    let mut abs: Vec<f64> = errors.iter().map(|e| e.abs()).collect();
    eprintln!(
        "triggered camera: {} scored frames; error against the truth p50 {:.1} µs, p99 {:.1} µs; transport latency {:.1} µs, error beyond it p50 {:.1} µs, p99 {:.1} µs",
        errors.len(),
        percentile(&mut abs, 50.0) / 1e3,
        percentile(&mut abs, 99.0) / 1e3,
        latency / 1e3,
        percentile(&mut rel, 50.0) / 1e3,
        p99 / 1e3
    );
    // measured p99: 13.6 µs on one machine (pty latency 11 µs), 15–31 µs on another (pty
    // latency 23 µs): the jitter of one-way pty messages sets it. 100 µs is still ~80×
    // better than the receive stamps (scenario T of the sync bench: 7.8 ms p99)
    assert!(
        p99 <= 100_000.0,
        "p99 {p99} ns beyond the transport latency"
    );
    // receive stamps alone would be milliseconds off
    let t = summary.sync["camera_head"]
        .trigger
        .clone()
        .expect("trigger report");
    // every frame is counted once: matched to its pulse, or left on the camera's clock
    // because it came before the lock (while the board's clock fit is young, an early
    // frame's own time can be too far from its pulse to backfill it: 2 to 5 frames at the
    // start, as the machine schedules the pty); never unmatched once locked
    assert_eq!(
        (t.stats.matched + t.stats.unmatched) as usize,
        delivered,
        "{t:?}"
    );
    assert_eq!(t.stats.unmatched, t.stats.unmatched_unlocked, "{t:?}");
    assert!(t.stats.unmatched <= 5, "{t:?}");
    assert!(
        t.stats.backfilled >= 1,
        "frames that built the lock get their pulses: {t:?}"
    );
    assert!(t.stats.locked && t.stats.lock_losses == 0, "{t:?}");
    assert_eq!(t.pulses_topic, PULSES);

    // -- PTP: the honest device is taken as it stamps, the drifting one flagged
    let right = &summary.sync["ft_right"];
    assert_eq!(right.method, "ptp", "{right:?}");
    let p = right.ptp.as_ref().unwrap();
    assert_eq!(p.status, "locked", "{p:?}");
    assert!(p.offset_span_us <= 2.0 * 2.0 + 2.0, "{p:?}");
    let left = &summary.sync["ft_left"];
    assert_eq!(left.method, "ptp-fault-envelope", "{left:?}");
    let why = left.ptp.as_ref().unwrap().fault.clone().unwrap();
    assert!(why.contains("ppm"), "{why}");
    assert!((left.drift_ppm - 50.0).abs() < 5.0, "{left:?}");
    let wrench = stamps(&summary, &["/wrist/right/wrench", "/wrist/left/wrench"]);
    let cap_r = capture(&truth, "/wrist/right/wrench");
    let mut err_r: Vec<f64> = wrench
        .iter()
        .filter(|((t, _), _)| t == "/wrist/right/wrench")
        .map(|((_, s), (log, _))| (*log as f64 - cap_r[*s as usize] as f64).abs())
        .collect();
    let p99 = percentile(&mut err_r, 99.0);
    // the servo's wander (1 µs) and the stamp's µs truncation
    assert!(p99 <= 2_000.0, "PTP-stamped ft_right p99 {p99} ns");
    let events =
        demotape_e2e::demotape(&["inspect", "--json", summary.path.to_str().unwrap()], &[]);
    let faults: Vec<&serde_json::Value> = events.1["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "ptp_fault")
        .collect();
    assert_eq!(faults.len(), 1, "{faults:?}");
    assert!(
        faults[0]["topic"].as_str().unwrap().contains("ft_left"),
        "{faults:?}"
    );
}

#[test]
fn dropped_frames_and_pulses_are_reported_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (summary, truth) = record_sim_with(dir.path(), "small", 9, 0, 1, 10.0, |c| {
        c.sim.boards = trigger_board(FrameStamp::Counter, 0.04, 0.03);
        // configured, not derived from the simulator: the camera by its short name
        c.sync.triggers = vec![TriggerEntry {
            camera: "head".into(),
            board: "trigger_board".into(),
            line: 0,
            exposure_offset_us: 20.0,
            exposure_us: 4000.0,
            min_latency_ms: 0.0,
            max_latency_ms: None,
            lock_after: 3,
        }];
    })
    .remove(0);
    let s = truth.streams.iter().find(|s| s.topic == CAMERA).unwrap();
    let dropped_frames: HashSet<u64> = s.dropped.iter().copied().collect();
    let tt = &truth.triggers[0];
    let dropped_pulses: HashSet<u64> = tt.dropped_pulses.iter().copied().collect();
    let n = s.capture_rel_ns.len() as u64;
    let delivered: Vec<u64> = (0..n).filter(|k| !dropped_frames.contains(k)).collect();
    let sent: Vec<u64> = (0..n).filter(|k| !dropped_pulses.contains(k)).collect();
    // what gaps can reveal: losses between the first and the last one delivered
    let inner = |lost: &HashSet<u64>, kept: &[u64]| {
        lost.iter()
            .filter(|&&k| k > kept[0] && k < *kept.last().unwrap())
            .count() as u64
    };
    // frames that arrived but whose pulse did not
    let orphans = delivered
        .iter()
        .filter(|k| dropped_pulses.contains(k))
        .count() as u64;
    assert!(
        !dropped_frames.is_empty() && !dropped_pulses.is_empty() && orphans > 0,
        "the seed injects both kinds of loss"
    );
    let t = summary.sync["camera_head"]
        .trigger
        .clone()
        .expect("trigger report");
    eprintln!(
        "{t:?}; truth: {} frames lost, {} pulses lost",
        dropped_frames.len(),
        dropped_pulses.len()
    );
    assert_eq!(t.stats.skipped_frames, inner(&dropped_frames, &delivered));
    assert_eq!(t.stats.missing_pulses, inner(&dropped_pulses, &sent));
    assert_eq!(t.stats.unmatched_no_pulse, orphans);
    assert_eq!(
        t.stats.matched + t.stats.unmatched,
        delivered.len() as u64,
        "every delivered frame decided once"
    );
    assert_eq!(t.stats.lock_losses, 0, "{t:?}");
    // and every matched frame has its own pulse: within a fraction of the 33 ms period
    let rec = stamps(&summary, &[CAMERA]);
    let cap = capture(&truth, CAMERA);
    let score_from = truth.t0_ns + 2_000_000_000;
    for ((_, seq), (log, _)) in &rec {
        let want = cap[*seq as usize];
        let err = (*log as f64 - want as f64).abs();
        if dropped_pulses.contains(seq) {
            // left to the camera's coarse counter: off by its latency, never by a period
            assert!(err < 16_000_000.0, "frame {seq}: {err} ns");
        } else if want >= score_from {
            assert!(
                err < 200_000.0,
                "frame {seq} matched to the wrong pulse: {err} ns"
            );
        }
    }
}

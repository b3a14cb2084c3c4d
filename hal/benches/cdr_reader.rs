//! Cost per message of validating network payloads: the schema-driven reader
//! (`hal::cdr_check::check`, what the recorder runs on every Zenoh message) against the
//! hand-written per-type checks it replaced (`old_cdr_check.rs`), side by side in one run.
//! Prints the median over rounds of ns per message and the ratio new / old per type, for
//! the check alone and for the ingest of one message as `ZenohSource` does it (check, then
//! the payload copied into the sample's own buffer); the writer's work per message (sync,
//! MCAP records, compression) comes on top of that and is the same for both. Last line: JSON.
//!
//! `cargo bench -p demotape-hal --bench cdr_reader`

#[path = "old_cdr_check.rs"]
mod old_cdr_check;

use hal::cdr_check::{KnownType, check};
use hal::msgs::{
    CompressedImage, Header, Image, JointState, RosMessage, TactileArray, Time, Vector3, Wrench,
    WrenchStamped,
};
use std::hint::black_box;
use std::time::Instant;

fn header() -> Header {
    Header {
        stamp: Time::from_nanos(1_700_000_000_123_456_789),
        frame_id: "camera_head_optical_frame".into(),
    }
}

fn payloads() -> Vec<(KnownType, &'static str, Vec<u8>)> {
    let n = 30;
    vec![
        (
            KnownType::JointState,
            "JointState (30 joints)",
            JointState {
                header: header(),
                name: (0..n).map(|i| format!("joint_{i}")).collect(),
                position: vec![0.1; n],
                velocity: vec![0.2; n],
                effort: vec![0.3; n],
            }
            .encode()
            .unwrap(),
        ),
        (
            KnownType::WrenchStamped,
            "WrenchStamped",
            WrenchStamped {
                header: header(),
                wrench: Wrench {
                    force: Vector3 {
                        x: 1.0,
                        y: 2.0,
                        z: 3.0,
                    },
                    torque: Vector3::default(),
                },
            }
            .encode()
            .unwrap(),
        ),
        (
            KnownType::TactileArray,
            "TactileArray 16x16",
            TactileArray {
                header: header(),
                pad: "right_a_tip".into(),
                rows: 16,
                cols: 16,
                taxel_size: 0.004,
                pressure: vec![1.0; 256],
            }
            .encode()
            .unwrap(),
        ),
        (
            KnownType::Image,
            "Image 640x480 rgb8",
            Image {
                header: header(),
                height: 480,
                width: 640,
                encoding: "rgb8".into(),
                is_bigendian: 0,
                step: 1920,
                data: vec![7; 1920 * 480],
            }
            .encode()
            .unwrap(),
        ),
        (
            KnownType::CompressedImage,
            "CompressedImage 60 kB",
            CompressedImage {
                header: header(),
                format: "jpeg".into(),
                data: vec![7; 60_000],
            }
            .encode()
            .unwrap(),
        ),
    ]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// ns per call of `f`, median over interleaved rounds of `a` and `b`.
fn side_by_side(
    iters: usize,
    rounds: usize,
    mut a: impl FnMut(),
    mut b: impl FnMut(),
) -> (f64, f64) {
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        // interleaved, so drift in machine load hits both alike
        let t = Instant::now();
        for _ in 0..iters {
            a();
        }
        ta.push(t.elapsed().as_nanos() as f64 / iters as f64);
        let t = Instant::now();
        for _ in 0..iters {
            b();
        }
        tb.push(t.elapsed().as_nanos() as f64 / iters as f64);
    }
    (median(ta), median(tb))
}

fn main() {
    let rounds = 15;
    println!(
        "{:<24} {:>10} {:>10} {:>8} {:>12} {:>12} {:>8}",
        "type", "check old", "check new", "new/old", "ingest old", "ingest new", "new/old"
    );
    let (mut check_ratios, mut ingest_ratios) = (Vec::new(), Vec::new());
    let mut rows = Vec::new();
    for (ty, name, bytes) in payloads() {
        assert!(check(ty, &bytes).is_ok() && old_cdr_check::check(ty, &bytes).is_ok());
        // big frames: fewer calls per round, the same time spent
        let iters = (20_000_000 / bytes.len().max(1000)).clamp(200, 20_000);
        let (o, n) = side_by_side(
            iters,
            rounds,
            || {
                black_box(old_cdr_check::check(ty, black_box(&bytes)).is_ok());
            },
            || {
                black_box(check(ty, black_box(&bytes)).is_ok());
            },
        );
        // what ZenohSource does per message: check the payload, then own it for the sample
        let ingest = |new: bool| {
            let ok = if new {
                check(ty, black_box(&bytes)).is_ok()
            } else {
                old_cdr_check::check(ty, black_box(&bytes)).is_ok()
            };
            black_box((ok, bytes::Bytes::from(black_box(&bytes[..]).to_vec())));
        };
        let (io, inn) = side_by_side(iters, rounds, || ingest(false), || ingest(true));
        check_ratios.push(n / o);
        ingest_ratios.push(inn / io);
        println!(
            "{name:<24} {o:>10.1} {n:>10.1} {:>8.2} {io:>12.1} {inn:>12.1} {:>8.2}",
            n / o,
            inn / io
        );
        rows.push(serde_json::json!({
            "type": name, "check_old_ns": o, "check_new_ns": n,
            "ingest_old_ns": io, "ingest_new_ns": inn,
        }));
    }
    let worst_ingest = ingest_ratios.iter().copied().fold(0.0, f64::max);
    println!(
        "median new/old over types: check {:.2}, ingest {:.2} (worst {:.2})",
        median(check_ratios.clone()),
        median(ingest_ratios.clone()),
        worst_ingest
    );
    println!(
        "{}",
        serde_json::json!({
            "bench": "cdr_reader",
            "types": rows,
            "check_new_over_old_median": median(check_ratios),
            "ingest_new_over_old_median": median(ingest_ratios),
            "ingest_new_over_old_worst": worst_ingest,
        })
    );
}

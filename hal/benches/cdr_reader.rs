//! Cost per message of validating network payloads: the schema-driven reader
//! (`hal::cdr_check::check`, what the recorder runs on every Zenoh message) against the
//! hand-written per-type checks it replaced (`old_cdr_check.rs`), side by side in one run.
//! Prints the median over rounds of ns per message and the ratio new / old per type.
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

fn main() {
    let iters = 20_000;
    let rounds = 15;
    println!(
        "{:<24} {:>12} {:>12} {:>8}",
        "type", "old ns/msg", "new ns/msg", "new/old"
    );
    let mut ratios = Vec::new();
    for (ty, name, bytes) in payloads() {
        assert!(check(ty, &bytes).is_ok() && old_cdr_check::check(ty, &bytes).is_ok());
        let (mut old, mut new) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            // interleaved, so drift in machine load hits both alike
            let t = Instant::now();
            for _ in 0..iters {
                black_box(old_cdr_check::check(ty, black_box(&bytes)).is_ok());
            }
            old.push(t.elapsed().as_nanos() as f64 / iters as f64);
            let t = Instant::now();
            for _ in 0..iters {
                black_box(check(ty, black_box(&bytes)).is_ok());
            }
            new.push(t.elapsed().as_nanos() as f64 / iters as f64);
        }
        let (o, n) = (median(old), median(new));
        ratios.push(n / o);
        println!("{name:<24} {o:>12.1} {n:>12.1} {:>8.2}", n / o);
    }
    println!("median new/old over types: {:.2}", median(ratios.clone()));
}

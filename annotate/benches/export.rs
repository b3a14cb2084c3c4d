//! LeRobot export throughput on a humanoid-ref episode (3 cameras 640x480 at 30 Hz, 32 joints
//! at 500 Hz, 2 wrenches at 1 kHz, 10 tactile pads at 200 Hz): frames/s with PNG images,
//! with PNG images from JPEG cameras (the same episode with its RGB cameras re-encoded as
//! JPEG `CompressedImage`, what real robots record: each frame is decoded before it is
//! re-encoded), with h264 video (when ffmpeg is installed) and state only, medians of 3 runs
//! each, measured side by side in one run.
//!
//! Run: `cargo build --release -p demotape-recorder && cargo bench -p demotape-annotate --bench export`
//! (`-- --episode FILE` to use an existing episode instead of recording a 10 s one).
//! Last line: JSON.

use annotate::lerobot::export::{ExportOptions, export};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

mod common;

fn main() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let episode = common::episode(tmp.path());
    let size_mb = std::fs::metadata(&episode).map_or(0.0, |m| m.len() as f64 / 1e6);
    let video = annotate::lerobot::video::check_available().is_ok();
    // the same episode with JPEG cameras, as a real robot's compressed topics record it
    let t = Instant::now();
    let jpeg_episode = common::jpeg_copy(&episode, &tmp.path().join("jpeg.mcap"));
    println!(
        "JPEG copy ({:.0} MB) made in {:.1} s",
        std::fs::metadata(&jpeg_episode).map_or(0.0, |m| m.len() as f64 / 1e6),
        t.elapsed().as_secs_f64()
    );
    let mut variants = vec![
        ("images", &episode, false, false),
        ("jpeg_images", &jpeg_episode, false, false),
        ("state_only", &episode, false, true),
    ];
    if video {
        variants.push(("video", &episode, true, false));
    }
    println!("episode {} ({size_mb:.0} MB)", episode.display());
    println!(
        "{:<12} {:>8} {:>10} {:>10} {:>10}",
        "variant", "frames", "median_s", "frames/s", "x_realtime"
    );
    let mut json = serde_json::Map::new();
    json.insert("bench".into(), "export".into());
    for (name, episode, video, no_images) in variants {
        let mut times = Vec::new();
        let mut frames = 0;
        for run in 0..3 {
            let out = tmp.path().join(format!("{name}-{run}"));
            let opts = ExportOptions {
                out: out.clone(),
                video,
                no_images,
                filter: annotate::lerobot::export::Filter::default(),
                ..ExportOptions::default()
            };
            let t = Instant::now();
            let r = export(std::slice::from_ref(episode), &opts).expect("export");
            times.push(t.elapsed().as_secs_f64());
            frames = r.total_frames;
            let _ = std::fs::remove_dir_all(&out);
        }
        let m = median(times);
        let fps = frames as f64 / m;
        let rt = frames as f64 / 30.0 / m;
        println!("{name:<12} {frames:>8} {m:>10.2} {fps:>10.1} {rt:>10.2}");
        json.insert(format!("frames_per_s_{name}"), fps.into());
        json.insert(format!("realtime_factor_{name}"), rt.into());
        json.insert(format!("median_s_{name}"), m.into());
        json.insert("frames".into(), frames.into());
    }
    json.insert("episode_mb".into(), size_mb.into());
    println!("{}", serde_json::Value::Object(json));
}

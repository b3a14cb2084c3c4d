//! LeRobot export throughput on a humanoid-ref episode (3 cameras 640x480 at 30 Hz, 32 joints
//! at 500 Hz, 2 wrenches at 1 kHz, 10 tactile pads at 200 Hz): frames/s with PNG images,
//! with PNG images from JPEG cameras (the same episode with its RGB cameras re-encoded as
//! JPEG `CompressedImage`, what real robots record: each frame is decoded before it is
//! re-encoded), with h264 and AV1 video (when ffmpeg has libx264 / libsvtav1), and state
//! only, and with the two depth cameras too (16-bit PNG, and lerobot 0.6's lossless 12-bit
//! HEVC depth video beside h264), medians of 3 runs each, measured side by side in one run;
//! the video variants also print their size on disk.
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

/// Bytes under `dir`, in MB (0 when it does not exist).
fn dir_mb(dir: &std::path::Path) -> f64 {
    fn walk(p: &std::path::Path) -> u64 {
        match std::fs::read_dir(p) {
            Ok(rd) => rd
                .filter_map(Result::ok)
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        walk(&p)
                    } else {
                        std::fs::metadata(&p).map_or(0, |m| m.len())
                    }
                })
                .sum(),
            Err(_) => 0,
        }
    }
    walk(dir) as f64 / 1e6
}

fn main() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let episode = common::episode(tmp.path());
    let size_mb = std::fs::metadata(&episode).map_or(0.0, |m| m.len() as f64 / 1e6);
    use annotate::lerobot::video::{Codec, VideoSettings, check_codec};
    let h264 = check_codec(Codec::H264).is_ok();
    let av1 = check_codec(Codec::Av1).is_ok();
    let settings = |c: Codec| VideoSettings {
        codec: c,
        crf: c.default_crf(),
        preset: c.default_preset().into(),
    };
    // the same episode with JPEG cameras, as a real robot's compressed topics record it
    let t = Instant::now();
    let jpeg_episode = common::jpeg_copy(&episode, &tmp.path().join("jpeg.mcap"));
    println!(
        "JPEG copy ({:.0} MB) made in {:.1} s",
        std::fs::metadata(&jpeg_episode).map_or(0.0, |m| m.len() as f64 / 1e6),
        t.elapsed().as_secs_f64()
    );
    use annotate::lerobot::export::LerobotVersion;
    // (name, episode, video, no images, depth cameras too, lerobot version)
    let mut variants = vec![
        ("images", &episode, None, false, false, LerobotVersion::V04),
        (
            "jpeg_images",
            &jpeg_episode,
            None,
            false,
            false,
            LerobotVersion::V04,
        ),
        (
            "state_only",
            &episode,
            None,
            true,
            false,
            LerobotVersion::V04,
        ),
        // the two depth cameras too, as 16-bit PNG
        (
            "depth_images",
            &episode,
            None,
            false,
            true,
            LerobotVersion::V04,
        ),
    ];
    if h264 {
        variants.push((
            "video",
            &episode,
            Some(settings(Codec::H264)),
            false,
            false,
            LerobotVersion::V04,
        ));
        if annotate::lerobot::video::check_depth_codec().is_ok() {
            // and as lerobot 0.6's depth video (12-bit HEVC, lossless)
            variants.push((
                "depth_video",
                &episode,
                Some(settings(Codec::H264)),
                false,
                true,
                LerobotVersion::V06,
            ));
        }
    }
    if av1 {
        variants.push((
            "video_av1",
            &episode,
            Some(settings(Codec::Av1)),
            false,
            false,
            LerobotVersion::V04,
        ));
    }
    println!("episode {} ({size_mb:.0} MB)", episode.display());
    println!(
        "{:<12} {:>8} {:>10} {:>10} {:>10} {:>10}",
        "variant", "frames", "median_s", "frames/s", "x_realtime", "video_MB"
    );
    let mut json = serde_json::Map::new();
    json.insert("bench".into(), "export".into());
    for (name, episode, video, no_images, depth, lerobot_version) in variants {
        let mut times = Vec::new();
        let mut frames = 0;
        let mut video_mb = 0.0;
        for run in 0..3 {
            let out = tmp.path().join(format!("{name}-{run}"));
            let opts = ExportOptions {
                out: out.clone(),
                video: video.is_some(),
                video_settings: video.clone().unwrap_or_default(),
                no_images,
                depth,
                lerobot_version,
                filter: annotate::lerobot::export::Filter::default(),
                ..ExportOptions::default()
            };
            let t = Instant::now();
            let r = export(std::slice::from_ref(episode), &opts).expect("export");
            times.push(t.elapsed().as_secs_f64());
            frames = r.total_frames;
            video_mb = dir_mb(&out.join("videos"));
            let _ = std::fs::remove_dir_all(&out);
        }
        let m = median(times);
        let fps = frames as f64 / m;
        let rt = frames as f64 / 30.0 / m;
        println!("{name:<12} {frames:>8} {m:>10.2} {fps:>10.1} {rt:>10.2} {video_mb:>10.1}");
        if video.is_some() {
            json.insert(format!("video_mb_{name}"), video_mb.into());
        }
        json.insert(format!("frames_per_s_{name}"), fps.into());
        json.insert(format!("realtime_factor_{name}"), rt.into());
        json.insert(format!("median_s_{name}"), m.into());
        json.insert("frames".into(), frames.into());
    }
    json.insert("episode_mb".into(), size_mb.into());
    println!("{}", serde_json::Value::Object(json));
}

//! `demotape view --save` on a humanoid-ref episode (3 RGB + 2 depth cameras 640x480 at 30 Hz,
//! 32 joints at 500 Hz, 2 wrenches at 1 kHz, 10 tactile pads at 200 Hz): the real-time factor
//! (episode seconds converted per wall second), median of 3 runs; and the same for a copy of
//! the episode with JPEG RGB cameras (what real robots' compressed topics record; Rerun gets
//! the JPEG bytes as they are), measured side by side in one run.
//!
//! Run: `cargo build --release -p demotape-recorder && cargo bench -p demotape-annotate --bench view`
//! (`-- --episode FILE` to use an existing episode). Last line: JSON.

use annotate::view::{Sink, view};

mod common;

fn main() {
    let robot = annotate::view::ViewRobot::default();
    let tmp = tempfile::tempdir().expect("tempdir");
    let episode = common::episode(tmp.path());
    let jpeg = common::jpeg_copy(&episode, &tmp.path().join("jpeg.mcap"));
    let mut json = serde_json::json!({"bench": "view"});
    for (name, ep) in [("raw", &episode), ("jpeg", &jpeg)] {
        let size_mb = std::fs::metadata(ep).map_or(0.0, |m| m.len() as f64 / 1e6);
        let mut secs = Vec::new();
        let mut last = None;
        for run in 0..3 {
            let out = tmp.path().join(format!("{name}{run}.rrd"));
            let r = view(ep, Sink::Save(&out), None, &robot, false).expect("view");
            let rrd_mb = std::fs::metadata(&out).map_or(0.0, |m| m.len() as f64 / 1e6);
            println!(
                "{name} run {run}: {:.2} s for {:.1} s of episode ({} messages) → {rrd_mb:.0} MB .rrd",
                r.seconds, r.duration_s, r.messages
            );
            secs.push(r.seconds);
            last = Some((r, rrd_mb));
            let _ = std::fs::remove_file(&out);
        }
        secs.sort_by(f64::total_cmp);
        let (r, rrd_mb) = last.expect("ran");
        let median = secs[1];
        let rtf = r.duration_s / median;
        println!(
            "{name}: episode {size_mb:.0} MB, median {median:.2} s, real-time factor {rtf:.2}"
        );
        let v = serde_json::json!({"episode_mb": size_mb, "episode_s": r.duration_s,
            "messages": r.messages, "median_s": median, "realtime_factor": rtf, "rrd_mb": rrd_mb,
            "entities": r.rows.len()});
        if name == "raw" {
            // the keys earlier runs of this bench reported
            json.as_object_mut()
                .expect("object")
                .extend(v.as_object().expect("object").clone());
        } else {
            json[name] = v;
        }
    }
    println!("{json}");
}

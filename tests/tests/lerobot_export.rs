//! `demotape export lerobot` / `import lerobot` end to end: recorded, annotated episodes become
//! a LeRobot v3.0 dataset that third-party readers accept and whose values equal the MCAP's at
//! the grid times (tests/python/check_lerobot.py: pandas, pyarrow, mcap-ros2, av), that
//! `lerobot-doctor` passes, with PNG images and with ffmpeg video; selection leaves out what it
//! says; import + re-export gives back the same state and action exactly.
//!
//! The `lerobot` 0.4.4 load check (`tests/python/lerobot_load.py`) needs torch (an 8 GB venv)
//! and is documented in README.md rather than run here.

use demotape_e2e::{demotape, lerobot_doctor as doctor, python, record_sim, run_python};
use std::process::Command;

#[test]
fn export_checks_out_in_python_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let eps_dir = dir.path().join("episodes");
    let eps = record_sim(&eps_dir, "small", 21, 0, 3, 5.0);
    let (code, _, err) = demotape(&["annotate", "--json"], &[&eps_dir]);
    assert_eq!(code, 0, "{err}");

    // images
    let ds = dir.path().join("ds");
    let (code, rep, err) = demotape(
        &["export", "lerobot", "--json", "--fps", "30", "--out"],
        &[&ds, &eps_dir],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(rep["kept"].as_array().unwrap().len(), 3, "{rep:#}");
    assert_eq!(rep["action_source"], "next_state");
    assert!(!dir.path().join("ds.partial").exists());
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ds.join("meta/info.json")).unwrap()).unwrap();
    assert_eq!(
        info["features"]["observation.images.head"]["dtype"],
        "image"
    );
    assert_eq!(
        info["features"]["observation.images.head"]["names"],
        serde_json::json!(["height", "width", "channels"])
    );
    assert_eq!(info["demotape"]["action_source"], "next_state");
    let checked: serde_json::Value =
        serde_json::from_slice(&run_python("check_lerobot.py", &[&ds])).unwrap();
    assert_eq!(checked["episodes"], 3);
    assert!(
        checked["images_checked"].as_u64().unwrap() > 50,
        "{checked}"
    );
    assert_eq!(checked["tasks"], serde_json::json!(["pick and place"]));
    doctor(&ds);

    // the outcomes the annotator gave decide the selection
    let outcomes: Vec<String> = eps
        .iter()
        .map(|(s, _)| {
            let side = s.path.with_extension("annotations.json");
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(side).unwrap()).unwrap();
            v["outcome"].as_str().unwrap().to_string()
        })
        .collect();
    let successes = outcomes.iter().filter(|o| *o == "success").count();
    let sel = dir.path().join("sel");
    let (code, rep, err) = demotape(
        &[
            "export",
            "lerobot",
            "--json",
            "--no-images",
            "--outcome",
            "success",
            "--out",
        ],
        &[&sel, &eps_dir],
    );
    if successes == 0 {
        assert_eq!(code, 1, "nothing to export is an error: {err}");
    } else {
        assert_eq!(code, 0, "{err}");
        assert_eq!(rep["kept"].as_array().unwrap().len(), successes);
        let excluded = rep["excluded"].as_array().unwrap();
        assert_eq!(excluded.len(), 3 - successes);
        for e in excluded {
            assert!(e["reason"].as_str().unwrap().starts_with("outcome "));
        }
        for k in rep["kept"].as_array().unwrap() {
            assert_eq!(k["outcome"], "success");
        }
    }

    // video, then import it and export again: state and action come back exactly
    let dsv = dir.path().join("dsv");
    let (code, _, err) = demotape(
        &["export", "lerobot", "--video", "--out"],
        &[&dsv, &eps_dir],
    );
    assert_eq!(code, 0, "{err}");
    let checked: serde_json::Value =
        serde_json::from_slice(&run_python("check_lerobot.py", &[&dsv])).unwrap();
    assert!(checked["video_frames_checked"].as_u64().unwrap() > 300);
    assert!(
        checked["episodes_per_video_file_max"].as_u64().unwrap() >= 2,
        "episodes share a camera's video file, as lerobot writes them: {checked}"
    );
    doctor(&dsv);
    // AV1, as lerobot encodes by default (libsvtav1, CRF 30, preset 12)
    let dsa = dir.path().join("dsa");
    let (code, _, err) = demotape(
        &["export", "lerobot", "--video", "--vcodec", "av1", "--out"],
        &[&dsa, &eps_dir],
    );
    assert_eq!(code, 0, "{err}");
    let checked: serde_json::Value =
        serde_json::from_slice(&run_python("check_lerobot.py", &[&dsa])).unwrap();
    assert!(
        checked["video_frames_checked"].as_u64().unwrap() > 300,
        "{checked}"
    );
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dsa.join("meta/info.json")).unwrap())
            .unwrap();
    let cam = info["features"]
        .as_object()
        .unwrap()
        .values()
        .find(|f| f["dtype"] == "video")
        .unwrap();
    assert_eq!(cam["info"]["video.codec"], "av1");
    // for lerobot 0.6: its language columns, phases as subtask rows
    let ds6 = dir.path().join("ds6");
    let (code, _, err) = demotape(
        &[
            "export",
            "lerobot",
            "--lerobot-version",
            "0.6",
            "--subtask-text",
            "lift=lift the object",
            "--no-images",
            "--out",
        ],
        &[&ds6, &eps_dir],
    );
    assert_eq!(code, 0, "{err}");
    let checked: serde_json::Value =
        serde_json::from_slice(&run_python("check_lerobot.py", &[&ds6])).unwrap();
    assert!(
        checked["language_rows_checked"].as_u64().unwrap() > 10,
        "{checked}"
    );
    // depth cameras: 16-bit PNG (mm) in the data files, and for lerobot 0.6 its depth video
    // (12-bit codes, HEVC lossless) beside the RGB videos; values checked against the MCAP
    let dsd = dir.path().join("dsd");
    let (code, _, err) = demotape(
        &[
            "export",
            "lerobot",
            "--depth",
            "--cameras",
            "head,head_depth,wrist_right_depth",
            "--out",
        ],
        &[&dsd, &eps_dir],
    );
    assert_eq!(code, 0, "{err}");
    let checked: serde_json::Value =
        serde_json::from_slice(&run_python("check_lerobot.py", &[&dsd])).unwrap();
    assert!(
        checked["depth_images_checked"].as_u64().unwrap() > 50,
        "{checked}"
    );
    doctor(&dsd);
    let dsd6 = dir.path().join("dsd6");
    let (code, _, err) = demotape(
        &[
            "export",
            "lerobot",
            "--depth",
            "--video",
            "--lerobot-version",
            "0.6",
            "--cameras",
            "head,wrist_right_depth",
            "--out",
        ],
        &[&dsd6, &eps_dir],
    );
    assert_eq!(code, 0, "{err}");
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dsd6.join("meta/info.json")).unwrap()).unwrap();
    let d = &info["features"]["observation.images.wrist_right_depth"];
    assert_eq!(d["dtype"], "video", "{d}");
    assert_eq!(d["info"]["is_depth_map"], true);
    assert_eq!(d["info"]["video.pix_fmt"], "gray12le");
    assert_eq!(d["shape"][2], 1);
    let checked: serde_json::Value =
        serde_json::from_slice(&run_python("check_lerobot.py", &[&dsd6])).unwrap();
    assert!(
        checked["depth_video_frames_checked"].as_u64().unwrap() > 50,
        "{checked}"
    );
    // both import back as 16UC1 depth on /camera/<name>/depth: the PNG export's exactly, the
    // depth video's within half a code of the original (re-exported as PNG and compared)
    let mut redone = Vec::new();
    for (name, src) in [("d", &dsd), ("d6", &dsd6)] {
        let imp = dir.path().join(format!("imported_{name}"));
        let (code, _, err) = demotape(&["import", "lerobot", "--out"], &[&imp, src]);
        assert_eq!(code, 0, "{err}");
        let re = dir.path().join(format!("re_{name}"));
        let (code, _, err) = demotape(
            &["export", "lerobot", "--depth", "--gates", "ignore", "--out"],
            &[&re, &imp],
        );
        assert_eq!(code, 0, "{err}");
        redone.push(re);
    }
    let same = Command::new(python())
        .arg("-c")
        .arg(
            "import sys, io, math, numpy as np, pyarrow.parquet as pq\n\
             from PIL import Image\n\
             t = lambda d: pq.read_table(d + '/data/chunk-000/file-000.parquet').to_pandas()\n\
             png = lambda b: np.asarray(Image.open(io.BytesIO(b['bytes']))).astype(float)\n\
             orig, re_png, re_vid = t(sys.argv[1]), t(sys.argv[2]), t(sys.argv[3])\n\
             n = 0\n\
             for k, other, exact in [('observation.images.head_depth', re_png, True),\n\
             \x20                       ('observation.images.wrist_right_depth', re_vid, False)]:\n\
             \x20   assert len(orig) == len(other)\n\
             \x20   for i in range(0, len(orig), 9):\n\
             \x20       a, b = png(orig[k].iloc[i]), png(other[k].iloc[i])\n\
             \x20       if exact:\n\
             \x20           assert np.array_equal(a, b), (k, i)\n\
             \x20       else:\n\
             \x20           a = np.clip(a, 10, 10000)\n\
             \x20           half = 0.5 * (math.log(13.5) - math.log(3.51)) / 4095 * (a + 3500) + 0.5\n\
             \x20           assert (np.abs(a - b) <= half).all(), (k, i, np.abs(a - b).max())\n\
             \x20       n += 1\n\
             print(n)",
        )
        .arg(&dsd)
        .arg(&redone[0])
        .arg(&redone[1])
        .output()
        .unwrap();
    assert!(
        same.status.success(),
        "depth after import differs: {}",
        String::from_utf8_lossy(&same.stderr)
    );
    // (not lerobot-doctor here: its feature-consistency check takes a language column for a
    // fixed-shape feature and fails when episodes have different numbers of phases, which
    // lerobot 0.6's own language datasets have too)
    let imported = dir.path().join("imported");
    let (code, rep, err) = demotape(
        &["import", "lerobot", "--json", "--out"],
        &[&imported, &dsv],
    );
    // clap: DIR is positional, --out takes the next value
    assert_eq!(code, 0, "{err}");
    assert_eq!(rep["episodes"].as_array().unwrap().len(), 3);
    let again = dir.path().join("again");
    let (code, rep, err) = demotape(
        &["export", "lerobot", "--json", "--out"],
        &[&again, &imported],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(rep["action_source"], "topic /joint_commands");
    let same = Command::new(python())
        .arg("-c")
        .arg(
            "import sys, numpy as np, pyarrow.parquet as pq\n\
             a = pq.read_table(sys.argv[1] + '/data/chunk-000/file-000.parquet').to_pandas()\n\
             b = pq.read_table(sys.argv[2] + '/data/chunk-000/file-000.parquet').to_pandas()\n\
             assert len(a) == len(b), (len(a), len(b))\n\
             for k in ['observation.state', 'action']:\n\
             \x20   assert np.array_equal(np.stack(a[k].to_numpy()), np.stack(b[k].to_numpy())), k\n\
             assert list(a['task_index']) == list(b['task_index'])\n\
             print(len(a))",
        )
        .arg(&dsv)
        .arg(&again)
        .output()
        .unwrap();
    assert!(
        same.status.success(),
        "re-export differs: {}",
        String::from_utf8_lossy(&same.stderr)
    );

    // the same dataset in the older v2.1 layout (rewritten by pandas/pyarrow) imports to the
    // same episodes: its re-export has the v3.0 dataset's state and action exactly
    let plain = dir.path().join("plain");
    let (code, _, err) = demotape(
        &["export", "lerobot", "--no-images", "--out"],
        &[&plain, &imported],
    );
    assert_eq!(code, 0, "{err}");
    let v21 = dir.path().join("v21");
    let conv: serde_json::Value =
        serde_json::from_slice(&run_python("lerobot_v21.py", &[&plain, &v21])).unwrap();
    assert_eq!(conv["episodes"], 3);
    let from21 = dir.path().join("from21");
    let (code, rep, err) = demotape(&["import", "lerobot", "--json", "--out"], &[&from21, &v21]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(rep["codebase_version"], "v2.1");
    assert_eq!(rep["episodes"].as_array().unwrap().len(), 3);
    let again21 = dir.path().join("again21");
    let (code, _, err) = demotape(
        &["export", "lerobot", "--no-images", "--out"],
        &[&again21, &from21],
    );
    assert_eq!(code, 0, "{err}");
    let same = Command::new(python())
        .arg("-c")
        .arg(
            "import sys, json, numpy as np, pyarrow.parquet as pq\n\
             a = pq.read_table(sys.argv[1] + '/data/chunk-000/file-000.parquet').to_pandas()\n\
             b = pq.read_table(sys.argv[2] + '/data/chunk-000/file-000.parquet').to_pandas()\n\
             assert len(a) == len(b), (len(a), len(b))\n\
             for k in ['observation.state', 'action']:\n\
             \x20   assert np.array_equal(np.stack(a[k].to_numpy()), np.stack(b[k].to_numpy())), k\n\
             ia = json.load(open(sys.argv[1] + '/meta/info.json'))['features']\n\
             ib = json.load(open(sys.argv[2] + '/meta/info.json'))['features']\n\
             assert ia['observation.state']['names'] == ib['observation.state']['names']\n\
             print(len(a))",
        )
        .arg(&plain)
        .arg(&again21)
        .output()
        .unwrap();
    assert!(
        same.status.success(),
        "v2.1 re-export differs: {}",
        String::from_utf8_lossy(&same.stderr)
    );
}

#[test]
fn bad_inputs_are_named_and_gate_failures_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let eps_dir = dir.path().join("episodes");
    record_sim(&eps_dir, "small", 4, 0, 1, 4.0);
    // a broken file and an episode failing its gates (min duration above its length)
    std::fs::write(eps_dir.join("broken.mcap"), b"not an mcap").unwrap();
    let cfg = dir.path().join("strict.toml");
    std::fs::write(&cfg, "[gates]\nmin_duration_s = 1000.0\n").unwrap();
    let (code, _, err) = demotape(&["annotate", "--config"], &[&cfg, &eps_dir]);
    assert_eq!(code, 1, "the broken file fails annotate: {err}");
    let ds = dir.path().join("ds");
    let (code, rep, err) = demotape(&["export", "lerobot", "--json", "--out"], &[&ds, &eps_dir]);
    assert_eq!(code, 1, "nothing exportable: {err}");
    assert!(
        err.contains("broken.mcap") && err.contains("not an MCAP file"),
        "{err}"
    );
    assert!(err.contains("quality gates failed: duration"), "{err}");
    assert_eq!(rep, serde_json::Value::Null);
    assert!(!ds.exists() && !dir.path().join("ds.partial").exists());
    // --gates ignore exports it, and the broken file still makes the exit code 1
    let (code, rep, err) = demotape(
        &["export", "lerobot", "--json", "--gates", "ignore", "--out"],
        &[&ds, &eps_dir],
    );
    assert_eq!(code, 1, "{err}");
    assert_eq!(rep["kept"].as_array().unwrap().len(), 1);
    assert_eq!(rep["excluded"][0]["error"], true);
    // an existing non-empty output is not overwritten without --force
    let (code, _, err) = demotape(
        &["export", "lerobot", "--gates", "ignore", "--out"],
        &[&ds, &eps_dir],
    );
    assert_eq!(code, 1);
    assert!(err.contains("--force"), "{err}");
    // import of something that is not a dataset names the file
    let (code, _, err) = demotape(
        &["import", "lerobot", "--out"],
        &[&dir.path().join("x"), &eps_dir],
    );
    assert_eq!(code, 1);
    assert!(err.contains("meta/info.json"), "{err}");
}

/// A rosbag2 MCAP written by rosbags (no demotape code), of types the exporter has no built-in
/// knowledge of — JointTrajectory commands, Float64MultiArray / Float64 gripper, Imu,
/// CompressedImage — exports with `--state` / `--action` field paths to a dataset that
/// lerobot-doctor passes and whose every value equals the message's at that frame time
/// (tests/python/rosbag2_any.py reads the bag back with rosbags' AnyReader).
#[test]
fn rosbag2_of_any_types_exports_by_field_paths() {
    let dir = tempfile::tempdir().unwrap();
    let bag = dir.path().join("bag");
    let out = Command::new(python())
        .arg(demotape_e2e::script("rosbag2_any.py"))
        .arg("write")
        .arg(&bag)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ds = dir.path().join("ds");
    let state = "/joint_states.position,/gripper/state.data,/imu.linear_acceleration";
    let action = "/arm_controller/joint_trajectory.points[0].positions,/gripper/command.data";
    let (code, rep, err) = demotape(
        &[
            "export", "lerobot", "--json", "--fps", "20", "--state", state, "--action", action,
            "--out",
        ],
        &[&ds, &bag],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        rep["action_source"],
        format!("paths {}", action.replace(',', ", "))
    );
    assert_eq!(
        rep["cameras"],
        serde_json::json!(["observation.images.camera"])
    );
    let checked: serde_json::Value = serde_json::from_slice(&run_python(
        "rosbag2_any.py",
        &[
            std::path::Path::new("check"),
            &bag,
            &ds,
            std::path::Path::new("20"),
        ],
    ))
    .unwrap();
    assert_eq!(checked["frames"], 61, "{checked}");
    doctor(&ds);

    // a path that does not fit the type names the fields it could have been
    let bad = dir.path().join("bad");
    let (code, rep, err) = demotape(
        &[
            "export",
            "lerobot",
            "--json",
            "--no-images",
            "--state",
            "/joint_states.positon",
            "--out",
        ],
        &[&bad, &bag],
    );
    assert_eq!(code, 1, "{rep:#}");
    assert!(
        err.contains("sensor_msgs/msg/JointState has no field \"positon\"")
            && err.contains("position, velocity, effort"),
        "{err}"
    );
    assert!(!bad.exists() && !dir.path().join("bad.partial").exists());
}

//! `demotape view --save`: a simulated, annotated episode becomes an .rrd that rerun-sdk
//! 0.36.3's own command line verifies, with the expected entity paths and as many rows per
//! stream as the MCAP has messages (tests/python/check_rrd.py).

use demotape_e2e::{demotape, record_sim, run_python};

#[test]
fn view_saves_an_rrd_rerun_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let eps = record_sim(dir.path(), "small", 8, 0, 1, 4.0);
    let ep = &eps[0].0.path;
    let (code, _, err) = demotape(&["annotate"], &[ep]);
    assert_eq!(code, 0, "{err}");
    let rrd = dir.path().join("ep.rrd");
    let (code, rep, err) = demotape(&["view", "--json", "--save"], &[&rrd, ep]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(rep["skipped"], 0, "{rep}");
    let checked: serde_json::Value = serde_json::from_slice(&run_python(
        "check_rrd.py",
        &[&rrd, ep, &ep.with_extension("annotations.json")],
    ))
    .unwrap();
    assert!(checked["checked"].as_u64().unwrap() > 30, "{checked}");

    // no sink is a usage error; a file that is not an MCAP is named
    let (code, _, _) = demotape(&["view"], &[ep]);
    assert_eq!(code, 2);
    let bogus = dir.path().join("bogus.mcap");
    std::fs::write(&bogus, b"nope").unwrap();
    let (code, _, err) = demotape(&["view", "--save"], &[&dir.path().join("b.rrd"), &bogus]);
    assert_eq!(code, 1);
    assert!(
        err.contains("bogus.mcap") && err.contains("not an MCAP"),
        "{err}"
    );
}

/// A rosbag2 MCAP written by rosbags, of types the viewer has no compiled-in decoder for, read
/// with the file's own schemas: /tf and /tf_static become Rerun's named transform frames,
/// PointCloud2 points in their tf frame, CameraInfo a pinhole, Odometry plots and a path, any
/// other type (Twist, Float64MultiArray, JointTrajectory) its numbers as scalars — each with
/// the bag's values, read back with rerun-sdk (tests/python/rosbag2_any.py view).
#[test]
fn view_draws_tf_points_pinholes_odometry_and_any_type() {
    let dir = tempfile::tempdir().unwrap();
    let bag = dir.path().join("bag");
    run_python("rosbag2_any.py", &[std::path::Path::new("write"), &bag]);
    let rrd = dir.path().join("bag.rrd");
    let (code, rep, err) = demotape(
        &["view", "--json", "--save"],
        &[&rrd, &bag.join("bag.mcap")],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(rep["skipped"], 0, "{rep}");
    assert!(
        rep["layout"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "cmd_vel"),
        "{rep}"
    );
    let checked: serde_json::Value = serde_json::from_slice(&run_python(
        "rosbag2_any.py",
        &[std::path::Path::new("view"), &bag, &rrd],
    ))
    .unwrap();
    assert_eq!(checked["clouds"], 31, "{checked}");
    // and rerun's own command line accepts the file
    run_python("check_rrd.py", &[&rrd, std::path::Path::new("--rows")]);
    // the bag's 6-DoF arm is not the simulator's: none is drawn, and the report says why
    assert!(
        rep["arm"].as_str().unwrap().contains("none drawn")
            && rep["arm"].as_str().unwrap().contains("joint_1"),
        "{rep}"
    );
    assert!(rep["rows"].get("world/arm").is_none());
    // with its URDF it is: the chain's joints are the bag's
    let urdf = dir.path().join("arm6.urdf");
    std::fs::write(&urdf, SIX_DOF_URDF).unwrap();
    let rrd2 = dir.path().join("bag-arm.rrd");
    let (code, rep, err) = demotape(
        &["view", "--json", "--tool-link", "tool0", "--save"],
        &[&rrd2, &bag, std::path::Path::new("--urdf"), &urdf],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        rep["arm"].as_str().unwrap().starts_with("URDF six"),
        "{rep}"
    );
    // drawn at most at 30 Hz from 100 Hz joint states over 3 s (every 4th: 76)
    let drawn = rep["rows"]["world/arm"].as_u64().unwrap();
    assert!((70..=91).contains(&drawn), "{rep}");
    assert_eq!(rep["rows"]["world/arm/ee"], rep["rows"]["world/arm"]);
    // no gripper was named: no fingers are made up
    assert!(rep["rows"].get("world/arm/ee/gripper").is_none(), "{rep}");
    run_python("check_rrd.py", &[&rrd2, std::path::Path::new("--rows")]);
    // a URDF that is not one is a usage error naming the file
    std::fs::write(&urdf, "<robot").unwrap();
    let (code, _, err) = demotape(
        &["view", "--save"],
        &[&rrd2, &bag, std::path::Path::new("--urdf"), &urdf],
    );
    assert_eq!(code, 2);
    assert!(err.contains("arm6.urdf"), "{err}");
}

/// A 6-DoF arm whose joints are named as the rosbag2 test bag's (`joint_1` … `joint_6`).
const SIX_DOF_URDF: &str = r#"<?xml version="1.0"?>
<robot name="six">
  <link name="base"/><link name="l1"/><link name="l2"/><link name="l3"/><link name="l4"/>
  <link name="l5"/><link name="l6"/><link name="tool0"/>
  <joint name="joint_1" type="revolute"><parent link="base"/><child link="l1"/>
    <origin xyz="0 0 0.16" rpy="0 0 0"/><axis xyz="0 0 1"/><limit lower="-3" upper="3" effort="1" velocity="1"/></joint>
  <joint name="joint_2" type="revolute"><parent link="l1"/><child link="l2"/>
    <origin xyz="0 0 0" rpy="1.5708 0 0"/><axis xyz="0 0 1"/><limit lower="-3" upper="3" effort="1" velocity="1"/></joint>
  <joint name="joint_3" type="revolute"><parent link="l2"/><child link="l3"/>
    <origin xyz="-0.42 0 0" rpy="0 0 0"/><axis xyz="0 0 1"/><limit lower="-3" upper="3" effort="1" velocity="1"/></joint>
  <joint name="joint_4" type="revolute"><parent link="l3"/><child link="l4"/>
    <origin xyz="-0.39 0 0.13" rpy="0 0 0"/><axis xyz="0 0 1"/><limit lower="-3" upper="3" effort="1" velocity="1"/></joint>
  <joint name="joint_5" type="revolute"><parent link="l4"/><child link="l5"/>
    <origin xyz="0 -0.1 0" rpy="1.5708 0 0"/><axis xyz="0 0 1"/><limit lower="-3" upper="3" effort="1" velocity="1"/></joint>
  <joint name="joint_6" type="revolute"><parent link="l5"/><child link="l6"/>
    <origin xyz="0 0.1 0" rpy="-1.5708 0 0"/><axis xyz="0 0 1"/><limit lower="-3" upper="3" effort="1" velocity="1"/></joint>
  <joint name="flange" type="fixed"><parent link="l6"/><child link="tool0"/><origin xyz="0 0 0.1"/></joint>
</robot>"#;

/// The live path end to end, all real processes: `demotape-recorder sim --live` publishes
/// over Zenoh while it records; a third-party subscriber (`eclipse-zenoh` + `rosbags`,
/// tests/python/live_sub.py) reads every live message as plain ROS 2 CDR, and
/// `demotape view --live --save` draws it into an .rrd that rerun-sdk accepts. The live copy
/// comes at the configured rates and image stride, and the recording itself loses nothing.
#[test]
fn live_view_draws_what_the_recorder_is_capturing() {
    use demotape_e2e::{bin, free_port, python, script};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let robot = format!("live{}", std::process::id());
    let cfg = dir.path().join("rec.toml");
    std::fs::write(
        &cfg,
        format!(
            "[recorder]\nrobot_id = \"{robot}\"\n[zenoh]\nlisten = [\"tcp/127.0.0.1:{port}\"]\nmulticast_scouting = false\n[live]\nimage_hz = 4.0\nsignal_hz = 20.0\nimage_stride = 4\n"
        ),
    )
    .unwrap();
    let recorder = Command::new(bin("demotape-recorder"))
        .args([
            "sim",
            "--live",
            "--json",
            "--load",
            "small",
            "--duration",
            "8",
        ])
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(dir.path().join("eps"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(800));
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let sub = Command::new(python())
        .arg(script("live_sub.py"))
        .args([&endpoint, &robot, "4"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rrd = dir.path().join("live.rrd");
    let (code, rep, err) = demotape(
        &[
            "view", "--live", "--robot", &robot, "--zenoh", &endpoint, "--for", "4", "--json",
            "--save",
        ],
        &[&rrd],
    );
    assert_eq!(code, 0, "{err}");
    let sub = sub.wait_with_output().unwrap();
    let rec = recorder.wait_with_output().unwrap();
    let rec_err = String::from_utf8_lossy(&rec.stderr);
    assert_eq!(rec.status.code(), Some(0), "recorder: {rec_err}");

    // the recording is whole: no sample dropped while it was being watched
    let out: serde_json::Value = serde_json::from_slice(
        rec.stdout
            .split(|b| *b == b'\n')
            .find(|l| !l.is_empty())
            .unwrap(),
    )
    .unwrap();
    let streams = out["summary"]["streams"].as_array().unwrap();
    let n = |k: &str| -> u64 { streams.iter().map(|s| s[k].as_u64().unwrap()).sum() };
    assert!(n("messages") > 10_000, "{out}");
    assert_eq!(n("drops"), 0, "{out}");

    // the viewer: every stream, at the configured rates, nothing undecodable
    assert_eq!(rep["skipped"], 0, "{rep}");
    let secs = rep["duration_s"].as_f64().unwrap();
    assert!(secs > 2.0, "{rep}");
    let rows = |p: &str| rep["rows"][p].as_u64().unwrap_or(0) as f64;
    for cam in [
        "camera/head/rgb",
        "camera/head/depth",
        "camera/wrist_left/rgb",
        "camera/wrist_right/depth",
    ] {
        let hz = rows(cam) / secs;
        assert!((2.0..=4.6).contains(&hz), "{cam}: {hz:.2} Hz\n{rep}");
    }
    for sig in [
        "joints/position/right_arm_joint1",
        "wrench/right/force_z",
        "tactile/left_palm",
        "world/arm",
    ] {
        let hz = rows(sig) / secs;
        assert!((12.0..=21.0).contains(&hz), "{sig}: {hz:.2} Hz\n{rep}");
    }
    // `sim --live` reports its own status once a second, drawn like the service's
    assert!(rows("recorder/state") >= 1.0, "{rep}");
    assert!(rows("recorder/rate_hz/joint_states") >= 3.0, "{rep}");
    assert!(rows("recorder/drops/camera_head_image_raw") >= 3.0, "{rep}");
    let layout: Vec<&str> = rep["layout"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for v in ["head rgb", "head depth", "3D", "joint positions (rad, m)"] {
        assert!(layout.contains(&v), "{layout:?}");
    }
    let rep_path = dir.path().join("live.json");
    std::fs::write(&rep_path, rep.to_string()).unwrap();
    let checked: serde_json::Value = serde_json::from_slice(&run_python(
        "check_rrd.py",
        &[&rrd, std::path::Path::new("--live"), &rep_path],
    ))
    .unwrap();
    assert!(checked["checked"].as_u64().unwrap() > 50, "{checked}");

    // the third-party subscriber: ROS 2 CDR, stride 4 (160x120 -> 40x30), receive stamps
    assert!(
        sub.status.success(),
        "{}",
        String::from_utf8_lossy(&sub.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&sub.stdout).unwrap();
    assert_eq!(got["errors"].as_array().unwrap().len(), 0, "{got}");
    assert_eq!(got["stamp_mismatch"], 0, "{got}");
    let head = &got["topics"]["/camera/head/image_raw"];
    assert_eq!(head["schema"], "sensor_msgs/msg/Image", "{got}");
    assert_eq!(
        head["sizes"],
        serde_json::json!([[40, 30, "rgb8"]]),
        "{got}"
    );
    assert!(head["n"].as_u64().unwrap() >= 8, "{got}");
    // the status `sim --live` publishes: per-channel rates over a whole period, no drops
    let statuses = got["statuses"].as_array().unwrap();
    let full = statuses
        .windows(2)
        .map(|w| &w[1])
        .filter(|s| s["state"] == "recording")
        .collect::<Vec<_>>();
    assert!(full.len() >= 2, "{statuses:?}");
    for s in full {
        assert!(
            s["episode"]["id"].as_str().unwrap().starts_with(&robot),
            "{s}"
        );
        let ch = |t: &str| {
            s["channels"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["topic"] == t)
                .unwrap_or_else(|| panic!("{t} in {s}"))
                .clone()
        };
        let joints = ch("/joint_states")["rate_hz"].as_f64().unwrap();
        assert!((400.0..=600.0).contains(&joints), "500 Hz joints: {joints}");
        let head = ch("/camera/head/image_raw")["rate_hz"].as_f64().unwrap();
        assert!((24.0..=36.0).contains(&head), "30 Hz camera: {head}");
        assert!(
            s["channels"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["drops"] == 0),
            "{s}"
        );
        assert!(s["live"]["published"].as_u64().unwrap() > 0, "{s}");
    }
    assert!(
        got["topics"]["/joint_states"]["n"].as_u64().unwrap() >= 40,
        "{got}"
    );
}

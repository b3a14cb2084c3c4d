//! `demotape-recorder run` against a real third-party Zenoh peer: Python `eclipse-zenoh`
//! publishing ROS 2 messages serialized by `rosbags` on zenoh-bridge-ros2dds and rmw_zenoh
//! keys, and driving start/mark/stop through the recorder's queryables.

use demotape_e2e::{
    RecorderProcess, bin, demotape, free_port, lerobot_doctor, run_python, zenoh_peer,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn write_config(dir: &Path, robot: &str, port: u16, extra: &str) -> PathBuf {
    let cfg = format!(
        r#"[recorder]
robot_id = "{robot}"
out_dir = "{out}"

[zenoh]
listen = ["tcp/127.0.0.1:{port}"]
multicast_scouting = false

[control]
min_free_mb = 1
{extra}
"#,
        out = dir.join("out").display()
    );
    let p = dir.join("recorder.toml");
    std::fs::write(&p, cfg).unwrap();
    p
}

/// Record one scenario of the Python peer against a fresh `run` service whose config gets
/// `extra` ([ros] topics...): the peer's report (its start and stop were answered ok) and
/// the episode files.
fn record_scenario(
    tmp: &Path,
    prefix: &str,
    scenario: &str,
    extra: &str,
) -> (serde_json::Value, Vec<PathBuf>) {
    let port = free_port();
    let robot = format!("{prefix}{}", std::process::id());
    let cfg = write_config(tmp, &robot, port, extra);
    let rec = RecorderProcess::start(&cfg);
    let out = zenoh_peer(scenario, port, &robot, &[]);
    let log = rec.stop();
    assert_eq!(out["start"]["ok"], true, "{out}\n{log}");
    assert_eq!(out["stop"]["ok"], true, "{out}\n{log}");
    (out, mcaps(&tmp.join("out").join(&robot)))
}

struct Read {
    /// payloads per topic in file order
    messages: BTreeMap<String, Vec<Vec<u8>>>,
    events: Vec<(String, String, u64, String)>,
    metadata: BTreeMap<String, BTreeMap<String, String>>,
}

fn read(path: &Path) -> Read {
    let data = std::fs::read(path).unwrap();
    let mut messages: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    let mut events = Vec::new();
    for m in mcap::MessageStream::new(&data).unwrap() {
        let m = m.unwrap();
        if m.channel.topic == "/demotape/events" {
            #[derive(serde::Deserialize)]
            struct Ev {
                _sec: i32,
                _nsec: u32,
                _frame: String,
                kind: String,
                topic: String,
                count: u64,
                detail: String,
            }
            let e: Ev = cdr::deserialize(&m.data).unwrap();
            events.push((e.kind, e.topic, e.count, e.detail));
        } else {
            messages
                .entry(m.channel.topic.clone())
                .or_default()
                .push(m.data.to_vec());
        }
    }
    let mut metadata = BTreeMap::new();
    for rec in mcap::read::LinearReader::new(&data).unwrap() {
        if let mcap::records::Record::Metadata(md) = rec.unwrap() {
            metadata.insert(md.name, md.metadata);
        }
    }
    Read {
        messages,
        events,
        metadata,
    }
}

fn mcaps(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "mcap"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn python_peer_records_both_key_styles_byte_exact_and_drives_the_episode() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let robot = format!("zt{}", std::process::id());
    let cfg = write_config(
        tmp.path(),
        &robot,
        port,
        r#"
[ros]
[[ros.topics]]
topic = "/camera/head/image_raw"
type = "sensor_msgs/msg/Image"
rate_hz = 20.0
[[ros.topics]]
topic = "/joint_states"
type = "sensor_msgs/msg/JointState"
rate_hz = 100.0
[[ros.topics]]
topic = "/wrist/right/wrench"
type = "geometry_msgs/msg/WrenchStamped"
rate_hz = 100.0
"#,
    );
    let rec = RecorderProcess::start(&cfg);
    // an engineer watches live meanwhile (`demotape view --live`, into an .rrd here); it
    // connects once the recorder listens (else Zenoh's reconnect backoff makes it late)
    let t0 = std::time::Instant::now();
    while !rec.log().contains("listening for operators") && t0.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let rrd = tmp.path().join("live.rrd");
    let viewer = Command::new(bin("demotape"))
        .args(["view", "--live", "--json", "--for", "8", "--robot", &robot])
        .args(["--zenoh", &format!("tcp/127.0.0.1:{port}"), "--save"])
        .arg(&rrd)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let out = zenoh_peer("record", port, &robot, &[]);
    let viewer = viewer.wait_with_output().unwrap();
    let log = rec.stop();

    assert_eq!(out["start"]["ok"], true, "{out}\n{log}");
    assert_eq!(out["start_again"]["ok"], false, "{out}");
    assert!(
        out["start_again"]["error"]
            .as_str()
            .unwrap()
            .contains("already recording"),
        "{out}"
    );
    assert_eq!(out["mark"]["ok"], true, "{out}");
    assert_eq!(out["stop"]["ok"], true, "{out}");
    assert_eq!(out["stop_again"]["ok"], false, "{out}");
    assert_eq!(out["mark_idle"]["ok"], false, "{out}");

    let files = mcaps(&tmp.path().join("out").join(&robot));
    assert_eq!(files.len(), 1, "{files:?}");
    let r = read(&files[0]);
    for (topic, published) in out["published"].as_object().unwrap() {
        let published: Vec<Vec<u8>> = published
            .as_array()
            .unwrap()
            .iter()
            .map(|h| hex(h.as_str().unwrap()))
            .collect();
        let got = r.messages.get(topic).cloned().unwrap_or_default();
        assert_eq!(
            got.len(),
            published.len(),
            "{topic}: recorded {} of {} published",
            got.len(),
            published.len()
        );
        assert!(
            got == published,
            "{topic}: payloads differ from what was published"
        );
    }
    let count = |kind: &str, topic: &str| -> u64 {
        r.events
            .iter()
            .filter(|e| e.0 == kind && e.1 == topic)
            .map(|e| e.2)
            .sum()
    };
    assert_eq!(count("malformed", "/joint_states"), 3, "{:?}", r.events);
    assert_eq!(count("wrong_type", "/joint_states"), 2, "{:?}", r.events);
    assert!(count("stale", "/wrist/right/wrench") >= 1, "{:?}", r.events);
    assert_eq!(count("stale", "/joint_states"), 0, "{:?}", r.events);
    let malformed = r.events.iter().find(|e| e.0 == "malformed").unwrap();
    assert!(malformed.3.contains("offset"), "{malformed:?}");
    assert!(
        r.events
            .iter()
            .any(|e| e.0 == "mark" && e.3.contains("slip"))
    );
    let ep = &r.metadata["demotape.episode"];
    assert_eq!(ep["task"], "pick the red cube");
    assert_eq!(ep["operator"], "ana");
    assert_eq!(ep["tags"], "e2e,zenoh");
    let labels = &r.metadata["demotape.labels"];
    assert_eq!(
        labels["outcome"], "success",
        "stop's outcome wins over the mark"
    );
    assert_eq!(labels["note"], "placed");
    assert!(labels["marks"].contains("rotated"));
    assert!(log.contains("control: ok"), "{log}");
    // logs that go to a pipe or a file carry no colour codes
    assert!(!log.contains('\x1b'), "ANSI escape codes in a piped log");
    // the episode says how long samples waited in the capture queue at worst
    let peak_age: f64 = r.metadata["demotape.episode_end"]["peak_queue_age_ms"]
        .parse()
        .unwrap();
    assert!((0.0..5000.0).contains(&peak_age), "{peak_age}");

    // live status, once a second, seen by the third-party peer while it published
    let statuses = out["statuses"].as_array().unwrap();
    assert!(statuses.len() >= 2, "{} status messages", statuses.len());
    // the crash-loss figure is live: the queue's age now and its peak
    for st in statuses {
        let age = st["queue_age_ms"]
            .as_f64()
            .expect("queue_age_ms in every status");
        assert!((0.0..5000.0).contains(&age), "{st}");
        assert!(st["queue_peak_age_ms"].as_f64().unwrap() >= 0.0);
    }
    // The rate is messages per status period. The first status after `start` covers a window
    // that began while idle, before the peer published, so take one whose previous status was
    // already recording: its whole window lies inside the episode.
    let rec = statuses
        .windows(2)
        .find(|w| w[0]["state"] == "recording" && w[1]["state"] == "recording")
        .map(|w| &w[1])
        .expect("two statuses in a row while recording (the episode lasts > 2 s)");
    assert!(rec["episode"]["id"].as_str().unwrap().starts_with(&robot));
    assert!(rec["disk_free_bytes"].as_u64().unwrap() > 0);
    let joints = rec["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["topic"] == "/joint_states")
        .unwrap();
    let rate = joints["rate_hz"].as_f64().unwrap();
    assert!(
        (40.0..=150.0).contains(&rate),
        "joint rate {rate} Hz (published ~90 Hz)"
    );
    assert!(
        rec["sync"]
            .as_object()
            .unwrap()
            .contains_key("joint_states")
    );
    let last = statuses.last().unwrap();
    assert_eq!(last["state"], "idle");
    let net = &last["channels"][1]["network"];
    assert_eq!(last["channels"][1]["topic"], "/joint_states");
    assert_eq!(net["malformed"], 3, "{last}");
    assert_eq!(net["wrong_type"], 2, "{last}");

    // the live viewer saw the network topics (raw CDR, images decimated) and the status
    assert!(
        viewer.status.success(),
        "{}",
        String::from_utf8_lossy(&viewer.stderr)
    );
    let live: serde_json::Value = serde_json::from_slice(&viewer.stdout).unwrap();
    let rows = |p: &str| live["rows"][p].as_u64().unwrap_or(0);
    assert!(rows("camera/head/rgb") >= 3, "{live}");
    assert!(rows("joints/position/j1") >= 20, "{live}");
    assert!(rows("wrench/right/force_x") >= 5, "{live}");
    assert!(rows("recorder/state") >= 2, "idle and recording: {live}");
    assert!(rows("recorder/rate_hz/joint_states") >= 2, "{live}");
    assert_eq!(live["skipped"], 0, "{live}");
    let watched = statuses
        .iter()
        .filter_map(|s| s["live"]["published"].as_u64())
        .max()
        .unwrap_or(0);
    assert!(watched > 0, "status.live: {last}");
    assert_eq!(last["live"]["dropped_busy"], 0, "{last}");
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// position[0] of each JointState (the peer's sequence number), in file order.
fn joint_seqs(path: &Path) -> Vec<u64> {
    #[derive(serde::Deserialize)]
    struct J {
        _s: i32,
        _n: u32,
        _f: String,
        _name: Vec<String>,
        position: Vec<f64>,
    }
    read(path).messages["/joint_states"]
        .iter()
        .map(|b| cdr::deserialize::<J>(b).unwrap().position[0] as u64)
        .collect()
}

#[test]
fn preroll_and_split_seams_lose_and_duplicate_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let robot = format!("zs{}", std::process::id());
    let cfg = write_config(
        tmp.path(),
        &robot,
        port,
        r#"preroll_s = 0.5
split_max_s = 1.0

[ros]
key_styles = ["bridge"]
[[ros.topics]]
topic = "/joint_states"
type = "sensor_msgs/msg/JointState"
rate_hz = 200.0
"#,
    );
    let rec = RecorderProcess::start(&cfg);
    let out = zenoh_peer("seams", port, &robot, &[]);
    let log = rec.stop();
    assert_eq!(out["start"]["ok"], true, "{out}\n{log}");
    assert_eq!(out["stop"]["ok"], true, "{out}\n{log}");
    let files = mcaps(&tmp.path().join("out").join(&robot));
    assert!(files.len() >= 3, "3.5 s split every 1 s: {files:?}");
    let mut all = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let s = joint_seqs(f);
        assert!(!s.is_empty(), "part {i} empty");
        let md = read(f).metadata;
        assert_eq!(md["demotape.episode"]["part"], i.to_string());
        // every part opens in Foxglove/Lichtblick on the timeline of its own messages
        demotape_e2e::assert_viewer_timeline(f);
        if i + 1 < files.len() {
            assert_eq!(
                md["demotape.split"]["next_part"],
                files[i + 1].file_name().unwrap().to_string_lossy()
            );
        }
        all.extend(s);
    }
    for w in all.windows(2) {
        assert_eq!(
            w[1],
            w[0] + 1,
            "gap or duplicate at a seam: {} then {}",
            w[0],
            w[1]
        );
    }
    let started = out["first_after_start"].as_u64().unwrap();
    let stopped = out["first_after_stop"].as_u64().unwrap();
    // pre-roll: about 0.5 s at ~190 Hz before start (the peer sleeps 5 ms per message)
    let pre = started - all[0];
    assert!((40..=110).contains(&pre), "pre-roll held {pre} messages");
    // everything published before the stop command is in, at most a couple after
    let last = *all.last().unwrap();
    assert!(
        last + 1 >= stopped,
        "last recorded {last}, stop sent after {stopped}"
    );
    assert!(
        last <= stopped + 2,
        "last recorded {last}, stop sent after {stopped}"
    );

    // `demotape view` of the first part shows the whole episode on one timeline: every part,
    // every joint state once; from the second part on, the rest; a missing part is named
    let rrd = tmp.path().join("parts.rrd");
    let (code, rep, err) = demotape(&["view", "--json", "--save"], &[&rrd, &files[0]]);
    assert_eq!(code, 0, "{err}");
    let shown: Vec<PathBuf> = serde_json::from_value(rep["parts"].clone()).unwrap();
    assert_eq!(shown, files);
    assert_eq!(rep["rows"]["joints/position/j1"], all.len(), "{rep:#}");
    let checked: serde_json::Value =
        serde_json::from_slice(&run_python("check_rrd.py", &[&rrd, Path::new("--rows")])).unwrap();
    assert_eq!(
        checked["rows"]["/joints/position/j1"],
        all.len(),
        "{checked}"
    );
    let first = joint_seqs(&files[0]).len();
    let (code, rep, err) = demotape(&["view", "--json", "--save"], &[&rrd, &files[1]]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(rep["parts"].as_array().unwrap().len(), files.len() - 1);
    assert_eq!(rep["rows"]["joints/position/j1"], all.len() - first);
    // and `export lerobot` makes the real parts one episode, values checked across the seams
    let ds = tmp.path().join("ds");
    let out_dir = tmp.path().join("out").join(&robot);
    let (code, rep, err) = demotape(
        &["export", "lerobot", "--json", "--fps", "30", "--out"],
        &[&ds, &out_dir],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(rep["kept"].as_array().unwrap().len(), 1, "{rep:#}");
    let checked: serde_json::Value =
        serde_json::from_slice(&run_python("check_lerobot.py", &[&ds])).unwrap();
    // about 4 s of joint states (pre-roll + 3.5 s) at 30 fps, across every part
    let frames = checked["frames"].as_u64().unwrap();
    assert!((100..=140).contains(&frames), "{checked}");
    std::fs::remove_file(files.last().unwrap()).unwrap();
    let (code, rep, err) = demotape(&["view", "--json", "--save"], &[&rrd, &files[0]]);
    assert_eq!(code, 0, "{err}");
    let missing = files.last().unwrap();
    assert_eq!(rep["missing_part"], missing.display().to_string(), "{rep}");
    assert_eq!(rep["parts"].as_array().unwrap().len(), files.len() - 1);
    assert!(err.contains(&missing.display().to_string()), "{err}");
}

/// TCP sockets in LISTEN state that process `pid` holds (from /proc: its socket inodes
/// matched against /proc/net/tcp and tcp6).
fn listening_sockets(pid: u32) -> usize {
    let mut inodes = std::collections::BTreeSet::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        if let Ok(l) = std::fs::read_link(e.unwrap().path()) {
            let l = l.to_string_lossy().into_owned();
            if let Some(i) = l.strip_prefix("socket:[").and_then(|x| x.strip_suffix(']')) {
                inodes.insert(i.to_string());
            }
        }
    }
    let mut n = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(t) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in t.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 && f[3] == "0A" && inodes.contains(f[9]) {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn ctl_client_drives_the_recorder_with_meaningful_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let robot = format!("zc{}", std::process::id());
    let cfg = write_config(
        tmp.path(),
        &robot,
        port,
        "[ros]\n[[ros.topics]]\ntopic = \"/joint_states\"\ntype = \"sensor_msgs/msg/JointState\"\n",
    );
    let rec = RecorderProcess::start(&cfg);
    let ctl_t = |timeout: &str, args: &[&str]| {
        let out = Command::new(bin("demotape-recorder"))
            .args(["ctl", "--config"])
            .arg(&cfg)
            .args([
                "--connect",
                &format!("tcp/127.0.0.1:{port}"),
                "--timeout",
                timeout,
            ])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let ctl = |args: &[&str]| ctl_t("10", args);
    let (code, out, err) = ctl(&[
        "start",
        "--task",
        "stack cups",
        "--operator",
        "bo",
        "--json",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        !err.contains("INFO"),
        "a client prints no Zenoh chatter: {err}"
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["episode"].as_str().unwrap().starts_with(&robot));
    // labels are bounded: a 16 KiB task or a thousand tags are refused, naming the limit
    let big = "x".repeat(16 * 1024);
    let (code, _, err) = ctl(&["mark", "--note", &big]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("note is 16384 bytes; at most 4096"), "{err}");
    let mut many = vec!["mark"];
    for _ in 0..40 {
        many.extend(["--tag", "t"]);
    }
    let (code, _, err) = ctl(&many);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("at most 32 per request"), "{err}");
    // given --connect, the client is a Zenoh client: it listens on no port
    let mut watch = Command::new(bin("demotape-recorder"))
        .args(["ctl", "--config"])
        .arg(&cfg)
        .args([
            "--connect",
            &format!("tcp/127.0.0.1:{port}"),
            "status",
            "--watch",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let listening = listening_sockets(watch.id());
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(listening, 0, "ctl listens on {listening} sockets");
    assert!(
        listening_sockets(rec.pid()) > 0,
        "the check sees the recorder's own listener"
    );
    let (code, _, err) = ctl(&["start"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("already recording"), "{err}");
    let (code, out, _) = ctl(&["status", "--json"]);
    assert_eq!(code, Some(0));
    let st: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(st["state"], "recording");
    assert_eq!(st["episode"]["task"], "stack cups");
    let (code, out, _) = ctl(&["status"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("RECORDING") && out.contains("/joint_states"),
        "{out}"
    );
    let (code, out, err) = ctl(&["discard", "--json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["discarded"], true);
    let moved = PathBuf::from(v["paths"][0].as_str().unwrap());
    assert!(moved.exists() && moved.parent().unwrap().ends_with("discarded"));
    let (code, _, err) = ctl(&["stop"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("not recording"), "{err}");
    // SIGINT like SIGTERM: the service finishes and says it was interrupted (README: 130)
    let _ = Command::new("kill")
        .args(["-INT", &rec.pid().to_string()])
        .status();
    let (code, log) = rec.stop_with_code();
    assert_eq!(code, Some(130), "{log}");
    // nobody there any more: a clear message, exit 1
    let (code, _, err) = ctl_t("1", &["status"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no recorder answered"), "{err}");
    // usage errors are 2
    let (code, _, _) = ctl_t("0", &["status"]);
    assert_eq!(code, Some(2));
}

/// The camera of most real robots: JPEG `CompressedImage` (image_transport's `compressed`
/// topic), published by a real rmw_zenoh-style peer beside joint states from two publishers
/// (arm and gripper drivers sharing `/joint_states`), recorded by `run`,
/// then exported to LeRobot with its frames decoded; check_lerobot.py compares every checked
/// frame with Pillow's decoding of the recorded JPEG and lerobot-doctor accepts the dataset.
#[test]
fn jpeg_compressed_camera_is_recorded_and_exported_to_lerobot() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, files) = record_scenario(
        tmp.path(),
        "zj",
        "compressed",
        r#"
[ros]
[[ros.topics]]
topic = "/camera/head/image_raw/compressed"
type = "sensor_msgs/msg/CompressedImage"
rate_hz = 20.0
[[ros.topics]]
topic = "/joint_states"
type = "sensor_msgs/msg/JointState"
rate_hz = 100.0
"#,
    );
    assert_eq!(files.len(), 1, "{files:?}");
    let r = read(&files[0]);
    assert_eq!(
        r.messages["/camera/head/image_raw/compressed"].len() as u64,
        out["frames"].as_u64().unwrap()
    );

    let ds = tmp.path().join("ds");
    let (code, rep, err) = demotape(
        &["export", "lerobot", "--json", "--fps", "30", "--out"],
        &[&ds, &files[0]],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(rep["kept"].as_array().unwrap().len(), 1, "{rep:#}");
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ds.join("meta/info.json")).unwrap()).unwrap();
    // two publishers on /joint_states (arm, then gripper, which spoke first): every joint,
    // the widest publisher's first, each interpolated on its own (check_lerobot.py)
    assert_eq!(
        info["features"]["observation.state"]["names"],
        serde_json::json!(["j2.pos", "j1.pos", "gripper.pos"]),
        "{info:#}"
    );
    let head = &info["features"]["observation.images.head"];
    assert_eq!(head["dtype"], "image", "{info:#}");
    assert_eq!(head["shape"], serde_json::json!([48, 64, 3]), "{info:#}");
    let checked: serde_json::Value =
        serde_json::from_slice(&run_python("check_lerobot.py", &[&ds])).unwrap();
    eprintln!("check_lerobot: {checked}");
    assert_eq!(checked["episodes"], 1, "{checked}");
    assert!(
        checked["images_checked"].as_u64().unwrap() >= 10,
        "{checked}"
    );
    assert!(
        checked["jpeg_frames_checked"].as_u64().unwrap() >= 10,
        "{checked}"
    );
    lerobot_doctor(&ds);
    // as video too (decoded, then encoded by ffmpeg)
    let vds = tmp.path().join("vds");
    let (code, _, err) = demotape(
        &["export", "lerobot", "--video", "--fps", "30", "--out"],
        &[&vds, &files[0]],
    );
    assert_eq!(code, 0, "{err}");
    let checked: serde_json::Value =
        serde_json::from_slice(&run_python("check_lerobot.py", &[&vds])).unwrap();
    assert_eq!(
        checked["video_frames_checked"], checked["frames"],
        "{checked}"
    );
    lerobot_doctor(&vds);

    // and in Rerun: the JPEGs under the same camera entity as raw images would be
    let rrd = tmp.path().join("ep.rrd");
    let (code, rep, err) = demotape(&["view", "--json", "--save"], &[&rrd, &files[0]]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(rep["skipped"], 0, "{rep}");
    let checked: serde_json::Value =
        serde_json::from_slice(&run_python("check_rrd.py", &[&rrd, Path::new("--rows")])).unwrap();
    assert_eq!(
        checked["rows"]["/camera/head/rgb"].as_u64(),
        out["frames"].as_u64(),
        "{checked}"
    );
}

/// A publisher that dies while the recorder is idle: the next episode used to have no word
/// of it (0 messages on that topic, no event). It must start with the state of every stream.
#[test]
fn an_episode_starts_knowing_which_streams_are_stale() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, files) = record_scenario(
        tmp.path(),
        "zs",
        "idle_stale",
        r#"
[ros]
key_styles = ["bridge"]
stale_after_ms = 500
[[ros.topics]]
topic = "/joint_states"
type = "sensor_msgs/msg/JointState"
rate_hz = 100.0
[[ros.topics]]
topic = "/wrist/right/wrench"
type = "geometry_msgs/msg/WrenchStamped"
rate_hz = 100.0
"#,
    );
    assert_eq!(files.len(), 1, "{files:?}");
    let r = read(&files[0]);
    let stale: Vec<_> = r.events.iter().filter(|e| e.0 == "stale").collect();
    assert_eq!(stale.len(), 1, "{:?}", r.events);
    assert_eq!(stale[0].1, "/wrist/right/wrench");
    assert!(stale[0].3.contains("stale at start"), "{:?}", stale[0]);
    assert_eq!(
        r.metadata["demotape.episode"]["stale_at_start"],
        "/wrist/right/wrench"
    );
    assert!(!r.messages["/joint_states"].is_empty());
}

/// `[ros] discover`: a real Python peer announces rmw_zenoh publisher tokens for 15 topics of
/// 14 types (one from a robot's own package, defined in `msg_paths`) and one of a type nobody
/// defined, then publishes inside one episode, in both byte orders, with malformed messages.
/// Every good message is in the file exactly once and byte for byte; the excluded topic and
/// the undefined type are not, and say why; every schema decodes in mcap-ros2-support and
/// rosbags, and the channel's RIHS01 hash is the one rosbags computes.
#[test]
fn discovered_topics_of_any_type_are_recorded_byte_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let msgs = demotape_e2e::script("msgs");
    let extra = format!(
        "[ros]\ndiscover = true\nexclude = [\"^/debug/\"]\nmsg_paths = [{:?}]\nkey_styles = [\"rmw\"]\n",
        msgs.display().to_string()
    );
    let (out, files) = record_scenario(tmp.path(), "anyty", "any_types", &extra);
    assert_eq!(files.len(), 1, "{files:?}");
    let r = read(&files[0]);
    let published = out["published"].as_object().unwrap();
    assert!(published.len() >= 15, "{}", published.len());
    let mut types = std::collections::BTreeSet::new();
    for (topic, msgs) in published {
        let want: Vec<Vec<u8>> = msgs
            .as_array()
            .unwrap()
            .iter()
            .map(|h| hex(h.as_str().unwrap()))
            .collect();
        if topic.starts_with("/debug/") {
            assert!(!r.messages.contains_key(topic), "{topic} was excluded");
            continue;
        }
        types.insert(out["types"][topic].as_str().unwrap().to_string());
        let got = r
            .messages
            .get(topic)
            .unwrap_or_else(|| panic!("{topic} not recorded"));
        assert_eq!(got.len(), want.len(), "{topic}: message count");
        assert!(
            got == &want,
            "{topic}: bytes differ from what was published"
        );
    }
    assert!(types.len() >= 14, "{types:?}");
    assert!(!r.messages.contains_key("/vendor/blob"));
    // the publisher announced mid-episode: discovered then, and the file says so
    assert!(
        r.events.iter().any(|e| e.0 == "discovered"
            && e.1 == "/late/imu"
            && e.3.contains("sensor_msgs/msg/Imu")),
        "{:?}",
        r.events
    );
    // malformed ones refused and counted, per topic (the other topics were discovered while
    // idle, before the episode: status reports them)
    let malformed: BTreeMap<&str, u64> =
        r.events
            .iter()
            .filter(|e| e.0 == "malformed")
            .fold(BTreeMap::new(), |mut m, e| {
                *m.entry(e.1.as_str()).or_default() += e.2;
                m
            });
    for (topic, n) in out["malformed"].as_object().unwrap() {
        if topic.starts_with("/debug/") {
            continue;
        }
        assert_eq!(
            malformed.get(topic.as_str()).copied(),
            n.as_u64(),
            "{topic}: {malformed:?}"
        );
    }
    // the undefined type and the excluded topic, with why
    let last = out["statuses"].as_array().unwrap().last().cloned().unwrap();
    let d = &last["discovery"];
    assert_eq!(d["recorded"], published.len() as u64 - 1, "{d}");
    assert!(
        d["skipped_topics"]["/debug/scan"]
            .as_str()
            .unwrap()
            .contains("ros.exclude"),
        "{d}"
    );
    assert!(
        d["skipped_topics"]["/vendor/blob"]
            .as_str()
            .unwrap()
            .contains("vendor_msgs/msg/Blob has no definition"),
        "{d}"
    );
    let chans: Vec<&str> = last["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["topic"].as_str().unwrap())
        .collect();
    assert!(
        chans.contains(&"/gripper/state") && !chans.contains(&""),
        "{chans:?}"
    );
    // two readers we did not write, from the file's own schemas
    let o = std::process::Command::new(demotape_e2e::python())
        .arg(demotape_e2e::script("check_any_types.py"))
        .arg(&files[0])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rep: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for (topic, msgs) in published {
        if topic.starts_with("/debug/") {
            continue;
        }
        let c = &rep[topic];
        let n = msgs.as_array().unwrap().len() as u64;
        assert_eq!(c["messages"], n, "{topic}: {c}");
        assert_eq!(c["mcap_ros2_ok"], n, "{topic}: {c}");
        assert_eq!(c["rosbags_ok"], n, "{topic}: {c}");
        assert_eq!(c["hash_file"], c["hash_rosbags"], "{topic}: {c}");
        assert_eq!(
            c["hash_file"],
            out["hashes"][out["types"][topic].as_str().unwrap()],
            "{topic}"
        );
        let stamped = !matches!(
            out["types"][topic].as_str().unwrap(),
            "tf2_msgs/msg/TFMessage"
                | "std_msgs/msg/Float64MultiArray"
                | "geometry_msgs/msg/Twist"
                | "std_msgs/msg/String"
        );
        assert_eq!(
            c["stamp"],
            if stamped { "header" } else { "receive" },
            "{topic}: {c}"
        );
    }
    demotape_e2e::assert_viewer_timeline(&files[0]);
    // `demotape inspect --sample` decodes any type from the file's own schema
    let o = Command::new(demotape_e2e::bin("demotape"))
        .arg("inspect")
        .arg(&files[0])
        .args(["--sample", "/gripper/state", "--sample", "/tf", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let g = &lines[0]["message"];
    assert_eq!(g["width"], 0.08, "{g}");
    assert_eq!(
        g["fingers"][0]["taxels"],
        serde_json::json!([0.5, 1.5]),
        "{g}"
    );
    assert_eq!(g["header"]["frame_id"], "gripper", "{g}");
    let tf = &lines[1]["message"];
    assert_eq!(tf["transforms"][1]["child_frame_id"], "tool0", "{tf}");
    let o = Command::new(demotape_e2e::bin("demotape"))
        .arg("inspect")
        .arg(&files[0])
        .args(["--sample", "/nope"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("no topic /nope") && e.contains("/gripper/state"),
        "{e}"
    );
}

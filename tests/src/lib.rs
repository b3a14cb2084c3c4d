//! Helpers for demotape's end-to-end tests: the Python clients, the built binaries, and
//! recording simulated episodes in-process.

use hal::sim::{SimConfig, SimEpisode, Truth};
use hal::{Payload, Sample};
use recorder::config::Config;
use recorder::sim::SimJob;
use recorder::writer::EpisodeSummary;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// `~/.cache/demotape`: where the tests keep the clients they install (venv, node modules).
fn cache_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/root".into())
        .join(".cache/demotape")
}

/// The Python interpreter with the test clients installed (`tests/python/requirements.txt`).
///
/// `DEMOTAPE_PYTHON` names one explicitly. Otherwise a venv under `~/.cache/demotape/venv` is
/// created (or updated when the requirements change) on first use, so `cargo test` works on a
/// fresh machine. A failure to install fails the test loudly: these checks never skip.
pub fn python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        if let Some(p) = std::env::var_os("DEMOTAPE_PYTHON") {
            return PathBuf::from(p);
        }
        let venv = cache_dir().join("venv");
        let py = venv.join("bin/python");
        let req = script("requirements.txt");
        let want = std::fs::read_to_string(&req).expect("tests/python/requirements.txt");
        let marker = venv.join(".demotape-requirements");
        if py.exists() && std::fs::read_to_string(&marker).ok().as_deref() == Some(want.as_str()) {
            return py;
        }
        if !py.exists() {
            let st = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .expect("running python3 -m venv");
            assert!(
                st.success(),
                "python3 -m venv {} failed (apt-get install python3-venv)",
                venv.display()
            );
        }
        let st = Command::new(&py)
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&req)
            .status()
            .expect("running pip");
        assert!(st.success(), "pip install -r {} failed", req.display());
        std::fs::write(&marker, want).expect("writing the venv marker");
        py
    })
    .clone()
}

/// The Node checks (`tests/js`: `@mcap/core`, `playwright-core`), installed with `npm ci`
/// (pinned in `tests/js/package-lock.json`) into `~/.cache/demotape/node` on first use, or
/// when the lock file changes. A failure to install fails the test: these checks never skip.
pub fn node_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = cache_dir().join("node");
        std::fs::create_dir_all(&dir).expect("creating ~/.cache/demotape/node");
        let js = crate_dir().join("js");
        let lock = std::fs::read_to_string(js.join("package-lock.json"))
            .expect("tests/js/package-lock.json");
        for f in [
            "package.json",
            "package-lock.json",
            "check_mcap.mjs",
            "review_ui.mjs",
        ] {
            std::fs::copy(js.join(f), dir.join(f)).expect("copying tests/js");
        }
        let marker = dir.join(".demotape-lock");
        if std::fs::read_to_string(&marker).ok().as_deref() != Some(lock.as_str())
            || !dir.join("node_modules/@mcap/core").exists()
            || !dir.join("node_modules/playwright-core").exists()
        {
            let st = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&dir)
                .status()
                .expect("running npm (apt-get install nodejs npm)");
            assert!(st.success(), "npm ci in {} failed", dir.display());
            std::fs::write(&marker, lock).expect("writing the npm marker");
        }
        dir
    })
}

/// Foxglove's own MCAP reader (`@mcap/core`, what Foxglove and Lichtblick open files with)
/// run by Node on `files`: one JSON object per file from `tests/js/check_mcap.mjs`.
pub fn foxglove_reader(files: &[&Path]) -> Vec<serde_json::Value> {
    let dir = node_dir();
    let out = Command::new("node")
        .arg(dir.join("check_mcap.mjs"))
        .args(files)
        .output()
        .expect("running node");
    assert!(
        out.status.success(),
        "check_mcap.mjs failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("check_mcap.mjs JSON"))
        .collect()
}

/// Assert that Foxglove's reader sees `file` as a viewer must: every chunk holds messages,
/// the timeline from the chunk indexes equals the Statistics range, and the messages read
/// back (CRCs checked) are as many as Statistics counts, within that range. Returns the
/// reader's report.
pub fn assert_viewer_timeline(file: &Path) -> serde_json::Value {
    let r = foxglove_reader(&[file]).remove(0);
    assert_eq!(r["ok"], true, "{}: {r}", file.display());
    assert_eq!(
        r["empty_chunks"],
        0,
        "{}: chunks without messages: {r}",
        file.display()
    );
    assert_eq!(
        r["chunk_start"],
        r["stats_start"],
        "{}: {r}",
        file.display()
    );
    assert_eq!(r["chunk_end"], r["stats_end"], "{}: {r}", file.display());
    assert_eq!(
        r["messages_read"].as_u64().map(|n| n.to_string()),
        r["stats_messages"].as_str().map(str::to_string),
        "{}: {r}",
        file.display()
    );
    assert_eq!(r["read_start"], r["stats_start"], "{}: {r}", file.display());
    assert_eq!(r["read_end"], r["stats_end"], "{}: {r}", file.display());
    r
}

/// This crate's directory (`tests/`) in the checkout being tested.
///
/// Taken from the environment `cargo test` gives the test process, not from `env!` at compile
/// time: the target directory is shared between clones (CI keeps it outside the clone), and a
/// test binary cargo considers fresh may have been compiled in another clone, whose path may
/// be gone or, worse, hold other sources.
pub fn crate_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The workspace root of the checkout being tested.
pub fn workspace_root() -> PathBuf {
    crate_dir()
        .parent()
        .expect("the tests crate sits in the workspace root")
        .to_path_buf()
}

/// Path of a script under `tests/python`.
pub fn script(name: &str) -> PathBuf {
    crate_dir().join("python").join(name)
}

/// Run a Python script, returning stdout; panics with stderr on failure.
pub fn run_python(script_name: &str, args: &[&Path]) -> Vec<u8> {
    let out = Command::new(python())
        .arg(script(script_name))
        .args(args)
        .output()
        .expect("running python");
    assert!(
        out.status.success(),
        "{script_name} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Path to a workspace binary built in the same profile as this test, building it if needed.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut c = Command::new(cargo);
        c.args([
            "build",
            "--bins",
            "-p",
            "demotape-recorder",
            "-p",
            "demotape-annotate",
        ]);
        if dir.file_name().is_some_and(|n| n == "release") {
            c.arg("--release");
        }
        if let Some(target) = dir.parent() {
            c.env("CARGO_TARGET_DIR", target);
        }
        // Cargo gives a test process its own package's CARGO_* variables (and a library
        // path); build scripts (ring's, via cc) fingerprint some of them, so a nested build
        // with them set would rebuild the TLS stack every time. Build as from a shell.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if (k.starts_with("CARGO_") && k != "CARGO_HOME" && k != "CARGO_TARGET_DIR")
                || k == "LD_LIBRARY_PATH"
                || k == "OUT_DIR"
            {
                c.env_remove(k.as_ref());
            }
        }
        c.current_dir(workspace_root());
        let st = c.status().expect("running cargo build");
        assert!(st.success(), "building the binaries failed");
    });
    let p = dir.join(name);
    assert!(p.exists(), "{} was not built", p.display());
    p
}

/// Run `demotape ARGS PATHS...`: exit code, stdout parsed as JSON (Null if it is not), stderr.
pub fn demotape(args: &[&str], paths: &[&Path]) -> (i32, serde_json::Value, String) {
    let out = Command::new(bin("demotape"))
        .args(args)
        .args(paths)
        .output()
        .expect("running demotape");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), v, stderr)
}

/// Record simulated episodes in-process (the same code path as `demotape-recorder sim`).
pub fn record_sim(
    out: &Path,
    load: &str,
    seed: u64,
    first_index: u64,
    episodes: u64,
    duration_s: f64,
) -> Vec<(EpisodeSummary, Truth)> {
    record_sim_with(out, load, seed, first_index, episodes, duration_s, |_| {})
}

/// [`record_sim`] with a chance to adjust the configuration first.
pub fn record_sim_with(
    out: &Path,
    load: &str,
    seed: u64,
    first_index: u64,
    episodes: u64,
    duration_s: f64,
    adjust: impl FnOnce(&mut Config),
) -> Vec<(EpisodeSummary, Truth)> {
    let mut cfg = Config {
        sim: SimConfig {
            seed,
            ..SimConfig::preset(load).expect("load preset")
        },
        ..Config::default()
    };
    cfg.recorder.out_dir = out.into();
    adjust(&mut cfg);
    let job = SimJob {
        episodes,
        duration_s,
        first_index,
        load: load.into(),
        board_faults: Vec::new(),
        live: false,
    };
    let mut truths = Vec::new();
    let sums = recorder::sim::run(
        &cfg,
        &job,
        tokio_util::sync::CancellationToken::new(),
        |_, t| truths.push(t.clone()),
    )
    .expect("recording");
    sums.into_iter().zip(truths).collect()
}

/// Regenerate every sample the simulator produced for an episode, from its ground truth.
pub fn regenerate(load: &str, truth: &Truth) -> (Vec<hal::StreamSpec>, Vec<Sample>) {
    let cfg = SimConfig {
        seed: truth.seed,
        ..SimConfig::preset(load).expect("load preset")
    };
    let mut ep = SimEpisode::new(&cfg, truth.episode_index, truth.duration_s, truth.t0_ns);
    let streams = ep.streams().to_vec();
    let mut all = Vec::new();
    while ep.next_samples(&mut all) {}
    (streams, all)
}

/// The digest the Python decoder computes for a sample's payload.
pub fn payload_crc(p: &Payload) -> u32 {
    let f64s = |v: &[f64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    match p {
        Payload::Image(m) => crc32fast::hash(&m.data),
        Payload::JointState(m) => {
            let mut b = f64s(&m.position);
            b.extend(f64s(&m.velocity));
            b.extend(f64s(&m.effort));
            crc32fast::hash(&b)
        }
        Payload::Wrench(m) => {
            let w = &m.wrench;
            crc32fast::hash(&f64s(&[
                w.force.x, w.force.y, w.force.z, w.torque.x, w.torque.y, w.torque.z,
            ]))
        }
        Payload::Tactile(m) => crc32fast::hash(
            &m.pressure
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect::<Vec<u8>>(),
        ),
        Payload::Trigger(m) => crc32fast::hash(
            &[
                m.time_ref.sec.to_le_bytes(),
                m.time_ref.nanosec.to_le_bytes(),
            ]
            .concat(),
        ),
        Payload::Clock => 0,
        // raw CDR as published: the digest of the whole message
        Payload::Raw(b) => crc32fast::hash(b),
    }
}

/// p-th percentile (0..=100) of a list.
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p / 100.0).round() as usize]
}

/// A free TCP port on localhost (for a recorder's Zenoh listener).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `demotape-recorder run` as a child process, its stderr collected.
pub struct RecorderProcess {
    child: std::process::Child,
    log: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl RecorderProcess {
    pub fn start(config: &Path) -> RecorderProcess {
        use std::io::BufRead;
        let mut child = Command::new(bin("demotape-recorder"))
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn demotape-recorder run");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let l2 = log.clone();
        let err = child.stderr.take().expect("stderr");
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                let mut l = l2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        RecorderProcess {
            child,
            log,
            reader: Some(reader),
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM and wait: the service must finish cleanly, exiting 130 (interrupted), or 3
    /// if it says samples were dropped (README's exit codes). Returns its log.
    pub fn stop(self) -> String {
        let (code, log) = self.stop_with_code();
        assert!(
            code == Some(130) || (code == Some(3) && log.contains("samples were dropped")),
            "recorder exit {code:?}\n{log}"
        );
        log
    }

    /// SIGTERM and wait; the exit code (None if killed by a signal) and the log.
    pub fn stop_with_code(mut self) -> (Option<i32>, String) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let st = self.child.wait().unwrap();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        (st.code(), self.log())
    }

    /// The process id (to send it other signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for RecorderProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run a scenario of the third-party Python Zenoh peer (`tests/python/zenoh_peer.py`)
/// against a recorder listening on `port`; `creds` = [user, password] or none.
pub fn zenoh_peer(scenario: &str, port: u16, robot: &str, creds: &[&str]) -> serde_json::Value {
    let out = Command::new(python())
        .arg(script("zenoh_peer.py"))
        .args([scenario, &format!("tcp/127.0.0.1:{port}"), robot])
        .args(creds)
        .output()
        .expect("python zenoh_peer.py");
    assert!(
        out.status.success(),
        "zenoh_peer.py {scenario} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("peer JSON")
}

/// `lerobot-doctor check` on a LeRobot dataset: no FAIL, v3.0.
pub fn lerobot_doctor(dataset: &Path) {
    let exe = python().parent().expect("venv bin").join("lerobot-doctor");
    let out = Command::new(exe)
        .args(["check", "--json"])
        .arg(dataset)
        .output()
        .expect("running lerobot-doctor");
    assert!(
        out.status.success(),
        "lerobot-doctor failed on {} ({}): {}\n{}",
        dataset.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
            .chars()
            .take(4000)
            .collect::<String>()
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("doctor JSON");
    assert_eq!(v["summary"]["FAIL"], 0, "lerobot-doctor: {v:#}");
    assert_ne!(v["overall_severity"], "FAIL", "{v:#}");
    assert_eq!(v["codebase_version"], "v3.0");
}

/// Write one episode of the family simulator (`hal::sim::family`) as a recording a UR-like
/// arm's ROS 2 driver would leave: `/joint_states` (the six arm joints and, with a gripper,
/// `finger_joint` = the opening in m) and `/wrist/wrench`, stamped from `start_ns`, and its
/// ground truth as `<stem>.reference.json` (what `demotape eval` reads). Its
/// `demotape.episode` metadata names the family as the task.
pub fn write_family_episode(
    path: &Path,
    ep: &hal::sim::family::FamilyEpisode,
    start_ns: u64,
) -> anyhow::Result<()> {
    write_family_episode_with(path, ep, start_ns, None)
}

/// The schema of the gripper status [`write_family_episode_with`] publishes: a gripper driver's
/// own type, which only the file's schema describes.
pub const GRIPPER_STATUS_SCHEMA: &str =
    "# a gripper driver's status\nfloat64 position\nfloat64 effort\n";

/// [`write_family_episode`], with the gripper's opening (m) published as `position` of a
/// `demo_gripper/msg/GripperStatus` ([`GRIPPER_STATUS_SCHEMA`]) on `gripper_topic`, at the
/// joint states' times, instead of as a joint of `/joint_states`.
pub fn write_family_episode_with(
    path: &Path,
    ep: &hal::sim::family::FamilyEpisode,
    start_ns: u64,
    gripper_topic: Option<&str>,
) -> anyhow::Result<()> {
    use hal::msgs::{Header, JointState, RosMessage, Time, Vector3, Wrench, WrenchStamped};
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut w = mcap::WriteOptions::new().profile("ros2").create(file)?;
    let js = w.add_schema(
        JointState::TYPE_NAME,
        "ros2msg",
        JointState::schema_text().as_bytes(),
    )?;
    let ws = w.add_schema(
        WrenchStamped::TYPE_NAME,
        "ros2msg",
        WrenchStamped::schema_text().as_bytes(),
    )?;
    let none = std::collections::BTreeMap::new();
    let jc = w.add_channel(js, "/joint_states", "cdr", &none)?;
    let wc = w.add_channel(ws, "/wrist/wrench", "cdr", &none)?;
    let gc = match gripper_topic {
        Some(topic) => {
            let gs = w.add_schema(
                "demo_gripper/msg/GripperStatus",
                "ros2msg",
                GRIPPER_STATUS_SCHEMA.as_bytes(),
            )?;
            Some(w.add_channel(gs, topic, "cdr", &none)?)
        }
        None => None,
    };
    // the task, as the recorder names it (`demotape-recorder ctl start --task`)
    w.write_metadata(&mcap::records::Metadata {
        name: "demotape.episode".into(),
        metadata: std::collections::BTreeMap::from([
            ("task".to_string(), ep.family.as_str().to_string()),
            ("start_ns".to_string(), start_ns.to_string()),
        ]),
    })?;
    let mut names = ep.joint_names.clone();
    if ep.aperture.is_some() && gc.is_none() {
        names.push("finger_joint".into());
    }
    let at = |t: f64| start_ns + (t * 1e9).round() as u64;
    // joint states and wrenches interleaved in time order
    let (mut i, mut k, mut seq) = (0, 0, 0u32);
    while i < ep.t.len() || k < ep.wrench_t.len() {
        let joint_next = k >= ep.wrench_t.len() || (i < ep.t.len() && ep.t[i] <= ep.wrench_t[k]);
        let (ch, ns, data) = if joint_next {
            let mut position = ep.q[i].clone();
            let ns = at(ep.t[i]);
            if let Some(a) = &ep.aperture {
                match gc {
                    // CDR: the encapsulation header, then two float64 (8-aligned after it)
                    Some(gc) => {
                        let mut data = vec![0u8, 1, 0, 0];
                        data.extend_from_slice(&a[i].to_le_bytes());
                        data.extend_from_slice(&0f64.to_le_bytes());
                        w.write_to_known_channel(
                            &mcap::records::MessageHeader {
                                channel_id: gc,
                                sequence: seq,
                                log_time: ns,
                                publish_time: ns,
                            },
                            &data,
                        )?;
                    }
                    None => position.push(a[i]),
                }
            }
            let m = JointState {
                header: Header {
                    stamp: Time::from_nanos(ns),
                    frame_id: String::new(),
                },
                name: names.clone(),
                position,
                velocity: Vec::new(),
                effort: Vec::new(),
            };
            i += 1;
            (jc, ns, m.encode()?)
        } else {
            let f = ep.wrench[k];
            let ns = at(ep.wrench_t[k]);
            let m = WrenchStamped {
                header: Header {
                    stamp: Time::from_nanos(ns),
                    frame_id: "tool0".into(),
                },
                wrench: Wrench {
                    force: Vector3 {
                        x: f[0],
                        y: f[1],
                        z: f[2],
                    },
                    torque: Vector3 {
                        x: f[3],
                        y: f[4],
                        z: f[5],
                    },
                },
            };
            k += 1;
            (wc, ns, m.encode()?)
        };
        w.write_to_known_channel(
            &mcap::records::MessageHeader {
                channel_id: ch,
                sequence: seq,
                log_time: ns,
                publish_time: ns,
            },
            &data,
        )?;
        seq += 1;
    }
    w.finish()?;
    let phases: Vec<serde_json::Value> = ep
        .phases
        .iter()
        .map(|p| serde_json::json!({"phase": p.phase.as_str(), "start_s": p.start_s, "end_s": p.end_s}))
        .collect();
    let mut reference = serde_json::json!({ "phases": phases });
    if let Some(o) = ep.outcome() {
        reference["outcome"] = serde_json::to_value(o)?;
        reference["attempts"] = serde_json::to_value(&ep.attempts)?;
    }
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    std::fs::write(
        path.with_file_name(format!("{stem}.reference.json")),
        serde_json::to_vec_pretty(&reference)?,
    )?;
    Ok(())
}

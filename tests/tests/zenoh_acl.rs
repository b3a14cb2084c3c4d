//! Access control: the documented Zenoh configuration (`docs/access-control/recorder.json5`,
//! user-password authentication + access-control rules) lets an authenticated operator
//! control the recorder, while a peer logged in as a viewer, and a peer without credentials,
//! are refused — and the refusal is in the recorder's log.

use demotape_e2e::{bin, python, script};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

fn peer(port: u16, robot: &str, creds: &[&str]) -> serde_json::Value {
    let out = Command::new(python())
        .arg(script("zenoh_peer.py"))
        .args(["auth", &format!("tcp/127.0.0.1:{port}"), robot])
        .args(creds)
        .output()
        .expect("python zenoh_peer.py");
    assert!(
        out.status.success(),
        "zenoh_peer.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("peer JSON")
}

#[test]
fn only_authenticated_operators_control_the_recorder() {
    let tmp = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let robot = format!("acl{}", std::process::id());
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/access-control");
    let creds = tmp.path().join("credentials.txt");
    std::fs::copy(docs.join("credentials.example"), &creds).unwrap();
    let zcfg = std::fs::read_to_string(docs.join("recorder.json5"))
        .unwrap()
        .replace("__LISTEN__", &format!("tcp/127.0.0.1:{port}"))
        .replace("__CREDENTIALS__", &creds.display().to_string());
    let zpath = tmp.path().join("recorder.json5");
    std::fs::write(&zpath, zcfg).unwrap();
    let out_dir = tmp.path().join("out");
    let toml = format!(
        "[recorder]\nrobot_id = \"{robot}\"\nout_dir = \"{}\"\n[zenoh]\nconfig_file = \"{}\"\n[control]\nmin_free_mb = 1\n[ros]\n[[ros.topics]]\ntopic = \"/joint_states\"\ntype = \"sensor_msgs/msg/JointState\"\n",
        out_dir.display(),
        zpath.display()
    );
    let cfg = tmp.path().join("recorder.toml");
    std::fs::write(&cfg, toml).unwrap();

    let mut child = Command::new(bin("demotape-recorder"))
        .args(["run", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let l2 = log.clone();
    let err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            l2.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let episodes = || {
        std::fs::read_dir(out_dir.join(&robot))
            .map(|d| d.count())
            .unwrap_or(0)
    };

    let viewer = peer(port, &robot, &["viewer", "viewer-password"]);
    let anonymous = peer(port, &robot, &[]);
    let impostor = peer(port, &robot, &["operator", "wrong-password"]);
    assert_eq!(episodes(), 0, "a refused start must not start anything");
    let operator = peer(port, &robot, &["operator", "operator-password"]);

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let st = child.wait().unwrap();
    reader.join().unwrap();
    let log = log.lock().unwrap().clone();
    assert!(st.success(), "{log}");

    for (who, v) in [
        ("viewer", &viewer),
        ("anonymous", &anonymous),
        ("impostor", &impostor),
    ] {
        assert!(
            v["start"]["ok"].is_null(),
            "{who}'s start must get no answer (refused): {v}"
        );
    }
    assert!(
        viewer["status"]["ok"].is_null(),
        "viewers may not query control: {viewer}"
    );
    assert_eq!(operator["start"]["ok"], true, "{operator}\n{log}");
    assert_eq!(
        operator["status"]["result"]["state"], "recording",
        "{operator}"
    );
    assert_eq!(episodes(), 1);
    assert!(
        log.contains("access refused") && log.contains("ctl/start"),
        "the refused start is logged:\n{log}"
    );
}

//! Access control: the documented Zenoh configuration (`docs/access-control/recorder.json5`,
//! user-password authentication + access-control rules) lets an authenticated operator
//! control the recorder, while a peer logged in as a viewer, and a peer without credentials,
//! are refused — and the refusal is in the recorder's log.

use demotape_e2e::{RecorderProcess, free_port, zenoh_peer};

#[test]
fn only_authenticated_operators_control_the_recorder() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let robot = format!("acl{}", std::process::id());
    let docs = demotape_e2e::workspace_root().join("docs/access-control");
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

    let rec = RecorderProcess::start(&cfg);
    let episodes = || {
        std::fs::read_dir(out_dir.join(&robot))
            .map(|d| d.count())
            .unwrap_or(0)
    };

    let viewer = zenoh_peer("auth", port, &robot, &["viewer", "viewer-password"]);
    let anonymous = zenoh_peer("auth", port, &robot, &[]);
    let impostor = zenoh_peer("auth", port, &robot, &["operator", "wrong-password"]);
    assert_eq!(episodes(), 0, "a refused start must not start anything");
    let operator = zenoh_peer("auth", port, &robot, &["operator", "operator-password"]);
    // an rmw_zenoh sensor node comes and goes: its liveliness token is allowed, so its
    // undeclaration is no "Unknown token" error
    let sensor = zenoh_peer(
        "sensor_node",
        port,
        &robot,
        &["sensors", "sensors-password"],
    );
    assert_eq!(sensor["published"], 20, "{sensor}");
    std::thread::sleep(std::time::Duration::from_millis(500));

    let log = rec.stop();
    assert!(
        !log.contains("Unknown token") && !log.contains(" ERROR "),
        "a sensor node's liveliness token is accepted and released cleanly:\n{log}"
    );

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
    // the live copy's schemas: for authenticated viewers and operators, not for strangers
    for v in [&viewer, &operator] {
        assert_eq!(
            v["schemas"],
            serde_json::json!(["sensor_msgs/msg/JointState"]),
            "{v}"
        );
    }
    assert!(anonymous["schemas"].is_null(), "{anonymous}");
    assert!(impostor["schemas"].is_null(), "{impostor}");
    assert!(
        log.contains("access refused") && log.contains("ctl/start"),
        "the refused start is logged:\n{log}"
    );
}

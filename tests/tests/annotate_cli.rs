//! `demotape annotate` on recorded episodes: phases and outcomes match the simulator's ground
//! truth, the companion layer decodes in the real Python ROS 2 reader, and a corrupt file in
//! the batch is reported without stopping the others.

use demotape_e2e::{bin, record_sim, run_python};
use std::process::Command;

#[test]
fn annotates_a_batch_and_matches_ground_truth() {
    let dir = tempfile::tempdir().unwrap();
    let eps = record_sim(dir.path(), "small", 5, 10, 2, 8.0);
    // a broken file in the same batch
    let broken = dir.path().join("sim-robot").join("broken.mcap");
    std::fs::write(&broken, b"\\x89MCAP0\\r\\n garbage").unwrap();
    let out = dir.path().join("labels");
    let res = Command::new(bin("demotape"))
        .arg("annotate")
        .arg(dir.path())
        .arg("--out")
        .arg(&out)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(
        res.status.code(),
        Some(1),
        "a failed file makes the batch exit 1"
    );
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(stderr.contains("broken.mcap"), "{stderr}");
    let docs: Vec<serde_json::Value> = serde_json::from_slice(&res.stdout).unwrap();
    assert_eq!(docs.len(), 3);
    for (summary, truth) in &eps {
        let doc = docs
            .iter()
            .find(|d| d["source"].as_str() == Some(summary.path.to_str().unwrap()))
            .expect("episode annotated");
        assert_eq!(
            doc["outcome"].as_str().unwrap(),
            format!("{:?}", truth.outcome).to_lowercase()
        );
        let got: Vec<(String, f64)> = doc["phases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["phase"].as_str().unwrap().to_string(),
                    p["start_s"].as_f64().unwrap(),
                )
            })
            .collect();
        let want: Vec<(String, f64)> = truth
            .phases
            .iter()
            .map(|p| (p.phase.as_str().to_string(), p.start_s))
            .collect();
        assert_eq!(
            got.iter().map(|g| &g.0).collect::<Vec<_>>(),
            want.iter().map(|w| &w.0).collect::<Vec<_>>(),
            "phase sequence"
        );
        for (g, w) in got.iter().zip(&want).skip(1) {
            assert!(
                (g.1 - w.1).abs() < 0.05,
                "{} boundary {:.3} s vs true {:.3} s",
                g.0,
                g.1,
                w.1
            );
        }
        assert_eq!(doc["pass"], true, "{}", doc["gates"]);
        // the companion layer, decoded by mcap-ros2-support
        let stem = summary
            .path
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let layer = out.join(format!("{stem}.annotations.mcap"));
        let digest: serde_json::Value =
            serde_json::from_slice(&run_python("decode_mcap.py", &[&layer])).unwrap();
        let msgs = digest["channels"]["/demotape/annotations/auto"]["messages"]
            .as_array()
            .unwrap();
        assert_eq!(msgs.len(), want.len() + 1, "one per phase plus the outcome");
        assert!(
            msgs.iter()
                .any(|m| m["kind"] == "outcome" && m["label"] == doc["outcome"])
        );
        assert!(out.join(format!("{stem}.annotations.json")).exists());
    }
    assert!(docs.iter().any(|d| {
        d["error"]
            .as_str()
            .is_some_and(|e| e.contains("broken.mcap"))
    }));

    // the episode that could not be annotated is still in the review queue, with why
    let o = Command::new(bin("demotape"))
        .args(["review", "list", "--json"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let q: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let failed: Vec<&serde_json::Value> = q
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| {
            i["why"]
                .as_str()
                .unwrap()
                .starts_with("could not be annotated")
        })
        .collect();
    assert_eq!(failed.len(), 1, "{q:#}");
    assert!(
        failed[0]["why"].as_str().unwrap().contains("broken.mcap"),
        "{q:#}"
    );

    // `demotape eval` against the simulator's truth: the same figures the checks above saw
    let eval = |extra: &[&str]| -> serde_json::Value {
        let o = Command::new(bin("demotape"))
            .arg("eval")
            .arg(dir.path().join("sim-robot"))
            .arg("--labels")
            .arg(&out)
            .args(extra)
            .arg("--json")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let r = eval(&[]);
    let all = &r["overall"];
    assert_eq!(all["episodes"], 2, "{r:#}");
    let transitions: usize = eps.iter().map(|(_, t)| t.phases.len() - 1).sum();
    assert_eq!(all["boundaries"], transitions as u64);
    assert_eq!(all["misses"], 0, "{all}");
    assert_eq!(all["accuracy"], 1.0);
    assert!(all["boundary_median_ms"].as_f64().unwrap() < 50.0, "{all}");
    assert_eq!(r["groups"].as_object().unwrap().len(), 1);
    assert!(
        r["episodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["reference"] == "truth")
    );
    assert!(
        r["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s[0].as_str().unwrap().ends_with("broken.mcap")),
        "{r:#}"
    );
    // a reviewer says the first episode's outcome was something else: the human layer is
    // the reference now, and the automatic outcome is wrong against it
    let (first, _) = &eps[0];
    let stem = first
        .path
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let sidecar = out.join(format!("{stem}.annotations.json"));
    let auto_outcome = docs
        .iter()
        .find(|d| d["source"].as_str() == Some(first.path.to_str().unwrap()))
        .unwrap()["outcome"]
        .as_str()
        .unwrap()
        .to_string();
    let other = if auto_outcome == "miss" {
        "success"
    } else {
        "miss"
    };
    let o = Command::new(bin("demotape"))
        .args(["review", "correct"])
        .arg(&sidecar)
        .args(["--outcome", other, "--author", "ci", "--reason", "test"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = eval(&["--reference", "human"]);
    assert_eq!(r["overall"]["episodes"], 1, "only the reviewed one: {r:#}");
    assert_eq!(r["overall"]["accuracy"], 0.0);
    assert_eq!(r["overall"]["confusion"][other][&auto_outcome], 1);
    let r = eval(&[]);
    assert_eq!(
        r["overall"]["accuracy"], 0.5,
        "human for one, truth for the other"
    );

    // the same arm described by a URDF (as any other robot would be) labels the same
    std::fs::write(
        dir.path().join("arm.urdf"),
        hal::robot::sim_arm_urdf("right_arm_"),
    )
    .unwrap();
    let cfg = dir.path().join("robot.toml");
    std::fs::write(&cfg, "[robot]\nurdf = \"arm.urdf\"\n").unwrap();
    let urdf_out = dir.path().join("labels-urdf");
    let ep = &eps[0].0.path;
    let res = Command::new(bin("demotape"))
        .arg("annotate")
        .arg(ep)
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(&urdf_out)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let by_urdf: Vec<serde_json::Value> = serde_json::from_slice(&res.stdout).unwrap();
    let by_dh = docs
        .iter()
        .find(|d| d["source"].as_str() == Some(ep.to_str().unwrap()))
        .unwrap();
    assert_eq!(by_urdf[0]["outcome"], by_dh["outcome"]);
    let starts = |d: &serde_json::Value| -> Vec<f64> {
        d["phases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["start_s"].as_f64().unwrap())
            .collect()
    };
    let (a, b) = (starts(&by_urdf[0]), starts(by_dh));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-6, "{a:?} vs {b:?}");
    }
    // a chain whose joints the recording does not have: named, with what it does have
    // (the simulated humanoid has a left arm too: another robot's names)
    let wrong = hal::robot::sim_arm_urdf("ur_");
    std::fs::write(dir.path().join("arm.urdf"), wrong).unwrap();
    let res = Command::new(bin("demotape"))
        .arg("annotate")
        .arg(ep)
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(dir.path().join("labels-wrong"))
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(1));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains("missing: ur_joint1") && err.contains("right_arm_joint1"),
        "{err}"
    );
}

//! The second simulated robot's task families (`hal::sim::family`: a UR-like 6-DoF arm from its
//! URDF, no tactile, an untared wrist sensor) written as recordings, annotated by
//! `demotape annotate` with a natural config for that robot (its URDF, its gripper joint or
//! none), and scored by `demotape eval` against their reference layers — what a data team
//! would run on its own robot.

use demotape_e2e::{demotape, write_family_episode, write_family_episode_with};
use hal::sim::family::{Family, Robot, generate, generate_on};

#[test]
fn every_family_is_annotated_from_its_urdf_and_scored_by_eval() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ur_like.urdf"), hal::robot::UR_LIKE_URDF).unwrap();
    let config = |name: &str, gripper: &str| {
        let p = dir.path().join(name);
        std::fs::write(
            &p,
            format!(
                "[robot]\nurdf = \"ur_like.urdf\"\njoint_units = \"rad\"\n\n[signals]\n\
                 gripper_joint = \"{gripper}\"\ngripper_scale = 1.0\n\
                 wrench_topic = \"/wrist/wrench\"\ntactile_topics = []\n"
            ),
        )
        .unwrap();
        p
    };
    let with_gripper = config("ur.toml", "finger_joint");
    let no_gripper = config("ur_no_gripper.toml", "");
    let n = 6;
    // n episodes of `family` on `robot` into `name/`, joints in degrees or radians
    let record = |name: &str, robot: &Robot, family: Family, degrees: bool| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..n {
            let mut ep = generate_on(robot, family, 99, i);
            assert_eq!(ep.joint_names.len(), robot.home.len());
            if degrees {
                for q in &mut ep.q {
                    q.iter_mut().for_each(|x| *x = x.to_degrees());
                }
            }
            write_family_episode(
                &d.join(format!("ep{i}.mcap")),
                &ep,
                1_700_000_000_000_000_000 + i * 100_000_000_000,
            )
            .unwrap();
        }
        d
    };
    let annotate = |d: &std::path::Path, cfg: &std::path::Path| {
        let (code, _, err) = demotape(
            &["annotate", "--config", cfg.to_str().unwrap(), "--json"],
            &[d],
        );
        assert_eq!(code, 0, "{}: {err}", d.display());
    };
    let ur = Robot::ur_like();
    // the same arm publishing degrees: the same labels once `joint_units = "deg"` says so
    let deg_cfg = dir.path().join("ur_deg.toml");
    std::fs::write(
        &deg_cfg,
        std::fs::read_to_string(&with_gripper)
            .unwrap()
            .replace("joint_units = \"rad\"", "joint_units = \"deg\""),
    )
    .unwrap();
    annotate(&record("six_dof_deg", &ur, Family::SixDof, true), &deg_cfg);
    // a 5-DoF arm (base yaw, three pitch joints, tool roll) in degrees, from its own URDF
    std::fs::write(
        dir.path().join("five_dof.urdf"),
        hal::robot::five_dof_urdf(),
    )
    .unwrap();
    let five_cfg = dir.path().join("five_deg.toml");
    std::fs::write(
        &five_cfg,
        std::fs::read_to_string(&deg_cfg)
            .unwrap()
            .replace("ur_like.urdf", "five_dof.urdf"),
    )
    .unwrap();
    let arm5 = Robot::five_dof();
    assert_eq!(arm5.home.len(), 5);
    annotate(
        &record("five_dof_deg", &arm5, Family::SixDof, true),
        &five_cfg,
    );
    for family in Family::ALL {
        let cfg = if family == Family::Wipe {
            &no_gripper
        } else {
            &with_gripper
        };
        annotate(&record(family.as_str(), &ur, family, false), cfg);
    }
    let (code, report, err) = demotape(&["eval", "--json"], &[dir.path()]);
    assert_eq!(code, 0, "{err}");
    assert!(report["skipped"].as_array().unwrap().is_empty(), "{report}");
    // a directory's figures (groups are keyed by directory path)
    let group = |name: &str| {
        report["groups"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(k, _)| k.ends_with(name))
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no group for {name}: {report}"))
    };
    for family in Family::ALL {
        let g = group(family.as_str());
        eprintln!("{}: {g}", family.as_str());
        assert_eq!(g["episodes"], n, "{family:?}");
        let median = g["boundary_median_ms"].as_f64().unwrap();
        let recall = g["recall"].as_f64().unwrap();
        if family.task_agnostic() {
            assert!(g["outcomes"] == 0, "{family:?}: no outcome to score");
            assert!(recall >= 0.9, "{family:?}: recall {recall}");
        } else {
            assert_eq!(g["outcomes"], n);
            let acc = g["accuracy"].as_f64().unwrap();
            assert!(acc >= 0.8, "{family:?}: accuracy {acc}");
            assert!(median <= 60.0, "{family:?}: median {median} ms");
        }
    }
    let g5 = group("five_dof_deg");
    eprintln!("five_dof_deg: {g5}");
    assert_eq!(g5["outcomes"], n);
    assert!(g5["accuracy"].as_f64().unwrap() >= 0.8, "{g5}");
    assert!(g5["boundary_median_ms"].as_f64().unwrap() <= 60.0, "{g5}");
    // degrees: the same phases as radians, episode by episode
    for i in 0..n {
        let read = |d: &str| -> serde_json::Value {
            serde_json::from_slice(
                &std::fs::read(dir.path().join(format!("{d}/ep{i}.annotations.json"))).unwrap(),
            )
            .unwrap()
        };
        let (a, b) = (read("six_dof"), read("six_dof_deg"));
        assert_eq!(a["outcome"], b["outcome"]);
        let starts = |v: &serde_json::Value| -> Vec<f64> {
            v["phases"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["start_s"].as_f64().unwrap())
                .collect()
        };
        let (sa, sb) = (starts(&a), starts(&b));
        assert_eq!(sa.len(), sb.len());
        assert!(
            sa.iter().zip(&sb).all(|(x, y)| (x - y).abs() < 1e-3),
            "{sa:?} {sb:?}"
        );
        let jump = |v: &serde_json::Value| {
            v["gates"]
                .as_array()
                .unwrap()
                .iter()
                .find(|g| g["name"] == "joint_jumps")
                .unwrap()["value"]
                .as_f64()
                .unwrap()
        };
        assert!(
            (jump(&a) - jump(&b)).abs() < 1e-6,
            "joint_jumps in SI either way"
        );
    }
    // the gripper from a field of its driver's own topic (a type only the file's schema
    // describes), not from the joint states: the same labels as from the finger joint
    let field_dir = dir.path().join("six_dof_gripper_field");
    std::fs::create_dir_all(&field_dir).unwrap();
    for i in 0..n {
        let ep = generate_on(&ur, Family::SixDof, 99, i);
        write_family_episode_with(
            &field_dir.join(format!("ep{i}.mcap")),
            &ep,
            1_700_000_000_000_000_000 + i * 100_000_000_000,
            Some("/gripper/status"),
        )
        .unwrap();
    }
    let field_cfg = dir.path().join("ur_gripper_field.toml");
    std::fs::write(
        &field_cfg,
        std::fs::read_to_string(&with_gripper).unwrap().replace(
            "gripper_joint = \"finger_joint\"",
            "gripper_joint = \"\"\ngripper_field = \"/gripper/status.position\"",
        ),
    )
    .unwrap();
    annotate(&field_dir, &field_cfg);
    for i in 0..n {
        let read = |d: &std::path::Path| -> serde_json::Value {
            serde_json::from_slice(
                &std::fs::read(d.join(format!("ep{i}.annotations.json"))).unwrap(),
            )
            .unwrap()
        };
        let (a, b) = (read(&dir.path().join("six_dof")), read(&field_dir));
        assert_eq!(a["outcome"], b["outcome"], "episode {i}");
        assert_eq!(a["phases"], b["phases"], "episode {i}");
    }
    // `view --config` draws that arm and its fingers opened as the field says (the same
    // source annotate reads), not only a gripper that is a joint
    let rrd = dir.path().join("field.rrd");
    let (code, rep, err) = demotape(
        &[
            "view",
            "--json",
            "--config",
            field_cfg.to_str().unwrap(),
            "--save",
        ],
        &[&rrd, &field_dir.join("ep0.mcap")],
    );
    assert_eq!(code, 0, "{err}");
    let arm_rows = rep["rows"]["world/arm"].as_u64().unwrap_or(0);
    assert!(arm_rows > 10, "{rep}");
    assert_eq!(
        rep["rows"]["world/arm/ee/gripper"], rep["rows"]["world/arm"],
        "fingers with every drawing of the arm: {rep}"
    );
    // a gripper field whose topic the recording lacks is a clear error naming both
    let (code, _, err) = demotape(
        &[
            "annotate",
            "--config",
            field_cfg.to_str().unwrap(),
            "--json",
        ],
        &[&dir.path().join("six_dof").join("ep0.mcap")],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("gripper_field") && err.contains("/gripper/status"),
        "{err}"
    );
    // the gripperless episodes got segments and no outcome; the sidecar says why
    let side: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("wipe/ep0.annotations.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(side["outcome"], "none");
    assert!(
        side["phases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["phase"] == "segment")
    );
    assert!(
        side["pass"].as_bool().unwrap(),
        "gates of a complete no-tactile episode: {side}"
    );
    // a wrist wrench alone (no joint states at all): contact segments, no outcome
    let only = dir.path().join("wrench_only");
    std::fs::create_dir_all(&only).unwrap();
    let mut ep = generate(Family::Wipe, 99, 0);
    ep.t.clear();
    ep.q.clear();
    ep.aperture = None;
    write_family_episode(&only.join("ep0.mcap"), &ep, 1_700_000_000_000_000_000).unwrap();
    let (code, _, err) = demotape(
        &[
            "annotate",
            "--config",
            no_gripper.to_str().unwrap(),
            "--json",
        ],
        &[&only],
    );
    assert_eq!(code, 0, "{err}");
    let side: serde_json::Value =
        serde_json::from_slice(&std::fs::read(only.join("ep0.annotations.json")).unwrap()).unwrap();
    assert_eq!(side["outcome"], "none");
    assert_eq!(side["used_signals"], serde_json::json!(["wrench"]));
    assert!(side["phases"].as_array().unwrap().len() >= 3, "{side}");
    // a regrasp's sidecar lists both attempts
    let side: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("regrasp/ep0.annotations.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(side["attempts"].as_array().unwrap().len(), 2, "{side}");
}

//! Learning from review, through the commands a data team runs (issue 17): `demotape train`
//! on a few episodes with reference layers, `demotape annotate --model` on new ones, `demotape
//! eval` on the result, `demotape eval --cv / --train-sizes`, and the refusals: a model of
//! another robot configuration (exit 2), a model of another task (left to the rules, said).

use demotape_e2e::{bin, write_family_episode};
use hal::sim::family::{Family, generate};
use std::path::{Path, PathBuf};

fn record(dir: &Path, name: &str, family: Family, range: std::ops::Range<u64>) -> PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    for i in range {
        write_family_episode(
            &d.join(format!("ep{i:02}.mcap")),
            &generate(family, 314, i),
            1_700_000_000_000_000_000 + i * 100_000_000_000,
        )
        .unwrap();
    }
    d
}

fn config(dir: &Path, name: &str, gripper: &str) -> PathBuf {
    let p = dir.join(name);
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
}

/// `demotape ARGS PATHS`: exit code, stdout, stderr.
fn demotape(args: &[&str], paths: &[&PathBuf]) -> (i32, String, String) {
    let out = std::process::Command::new(bin("demotape"))
        .args(args)
        .args(paths)
        .output()
        .expect("running demotape");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn a_model_from_five_reviewed_episodes_labels_the_next_ones() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ur_like.urdf"), hal::robot::UR_LIKE_URDF).unwrap();
    let plain = config(dir.path(), "ur_no_gripper.toml", "");
    let gripper = config(dir.path(), "ur.toml", "finger_joint");
    let s = |p: &Path| p.to_str().unwrap().to_string();

    // five reviewed wipes teach the task; twelve new ones are labelled by the model
    let reviewed = record(dir.path(), "wipe_reviewed", Family::Wipe, 0..5);
    let fresh = record(dir.path(), "wipe_new", Family::Wipe, 5..17);
    let model = dir.path().join("wipe.model.json");
    let (code, out, err) = demotape(
        &[
            "train",
            "--config",
            &s(&plain),
            "--out",
            &s(&model),
            "--cv",
            "5",
        ],
        &[&reviewed],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("5 episodes"), "{out}");
    let m = json(&std::fs::read_to_string(&model).unwrap());
    assert_eq!(m["format"], "demotape-model");
    assert_eq!(m["task"], "wipe", "the episodes' metadata names the task");
    assert_eq!(m["episodes"].as_array().unwrap().len(), 5);
    assert_eq!(m["templates"].as_array().unwrap().len(), 5);
    assert!(
        m["cv"]["boundary_median_ms"].as_f64().is_some(),
        "{}",
        m["cv"]
    );
    assert!(m["config_hash"].as_str().is_some_and(|h| h.len() == 8));
    // training is deterministic: the same inputs give the same file
    let again = dir.path().join("again.model.json");
    let (code, _, err) = demotape(
        &[
            "train",
            "--config",
            &s(&plain),
            "--out",
            &s(&again),
            "--cv",
            "5",
        ],
        &[&reviewed],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read(&model).unwrap(),
        std::fs::read(&again).unwrap()
    );

    let (code, out, err) = demotape(
        &[
            "annotate",
            "--config",
            &s(&plain),
            "--model",
            &s(&model),
            "--json",
        ],
        &[&fresh],
    );
    assert_eq!(code, 0, "{err}");
    let v = json(&out);
    for a in v.as_array().unwrap() {
        assert_eq!(a["labeler"]["by"], "model", "{}", a["labeler"]);
        assert_eq!(a["labeler"]["nearest"].as_array().unwrap().len(), 5);
    }
    let (code, out, err) = demotape(&["eval", "--json"], &[&fresh]);
    assert_eq!(code, 0, "{err}");
    let r = json(&out);
    let o = &r["overall"];
    assert_eq!(o["episodes"], 12);
    assert!(o["recall"].as_f64().unwrap() >= 0.9, "{o}");
    assert!(o["boundary_median_ms"].as_f64().unwrap() <= 100.0, "{o}");

    // another robot configuration: refused outright
    let (code, _, err) = demotape(
        &["annotate", "--config", &s(&gripper), "--model", &s(&model)],
        &[&fresh],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not moved between robots"), "{err}");

    // another task on the same robot: each episode left to the rules, and the layer says why
    let insertion = record(dir.path(), "insertion", Family::Insertion, 0..2);
    let (code, out, err) = demotape(
        &[
            "annotate",
            "--config",
            &s(&plain),
            "--model",
            &s(&model),
            "--json",
        ],
        &[&insertion],
    );
    assert_eq!(code, 0, "{err}");
    for a in json(&out).as_array().unwrap() {
        assert_eq!(a["labeler"]["by"], "rules", "{}", a["labeler"]);
        let why = a["labeler"]["why"].as_str().unwrap();
        assert!(
            why.contains("\"wipe\"") && why.contains("\"insertion\""),
            "{why}"
        );
    }
    assert!(err.contains("not used"), "a warning says so: {err}");

    // a file that is not a model
    let bogus = dir.path().join("bogus.json");
    std::fs::write(&bogus, "{\"format\": \"something\"}").unwrap();
    let (code, _, err) = demotape(
        &["annotate", "--config", &s(&plain), "--model", &s(&bogus)],
        &[&fresh],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("bogus.json") && err.contains("not a demotape model"),
        "{err}"
    );
}

#[test]
fn eval_cv_gives_a_learning_curve_per_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ur_like.urdf"), hal::robot::UR_LIKE_URDF).unwrap();
    let gripper = config(dir.path(), "ur.toml", "finger_joint");
    let six = record(dir.path(), "six_dof", Family::SixDof, 0..14);
    let regrasp = record(dir.path(), "regrasp", Family::Regrasp, 0..10);
    let (code, out, err) = demotape(
        &[
            "eval",
            "--config",
            gripper.to_str().unwrap(),
            "--cv",
            "3",
            "--train-sizes",
            "3,5",
            "--repeats",
            "2",
            "--json",
        ],
        &[&six, &regrasp],
    );
    assert_eq!(code, 0, "{err}");
    let r = json(&out);
    for (g, n) in [(&six, 14), (&regrasp, 10)] {
        let rep = &r["groups"][g.to_str().unwrap()];
        assert_eq!(rep["episodes"], n, "{rep}");
        assert_eq!(rep["kfold"]["folds"], 3);
        assert_eq!(
            rep["kfold"]["summary"]["episodes"], n,
            "every episode scored once"
        );
        let curve = rep["curve"].as_array().unwrap();
        assert_eq!(curve.len(), 2);
        assert_eq!(curve[0]["reviewed"], 3);
        assert_eq!(
            curve[1]["scored"],
            2 * (n - 5),
            "two draws, the rest scored"
        );
        let k5 = &curve[1]["summary"];
        assert!(k5["recall"].as_f64().unwrap() >= 0.85, "{g:?}: {k5}");
        assert!(
            k5["boundary_median_ms"].as_f64().unwrap() <= 150.0,
            "{g:?}: {k5}"
        );
        assert!(rep["rules"]["accuracy"].as_f64().is_some());
    }
    // the reviewed episodes in coverage order (what `review list --order coverage` shows
    // first) instead of at random
    let (code, out, err) = demotape(
        &[
            "eval",
            "--config",
            gripper.to_str().unwrap(),
            "--train-sizes",
            "5",
            "--repeats",
            "2",
            "--select",
            "coverage",
            "--without-rules",
            "--json",
        ],
        &[&six],
    );
    assert_eq!(code, 0, "{err}");
    let r = json(&out);
    let p = &r["groups"][six.to_str().unwrap()]["curve"][0];
    assert_eq!(p["selection"], "coverage", "{p}");
    assert_eq!(p["scored"], 2 * (14 - 5), "{p}");
    // the table names every group and labeller
    let (code, out, err) = demotape(
        &[
            "eval",
            "--config",
            gripper.to_str().unwrap(),
            "--train-sizes",
            "3",
            "--repeats",
            "1",
        ],
        &[&six],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("rules") && out.contains("k=3"), "{out}");
}

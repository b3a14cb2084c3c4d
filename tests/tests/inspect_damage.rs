//! `demotape inspect` on intact, truncated, corrupted and hostile files: clear errors that
//! name the file and the byte offset, everything readable still listed, never a panic.

use annotate::inspect::Inspection;
use demotape_e2e::{bin, record_sim};
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::process::Command;

fn inspect(path: &Path) -> (i32, serde_json::Value, String) {
    let out = Command::new(bin("demotape"))
        .arg("inspect")
        .arg("--json")
        .arg(path)
        .output()
        .unwrap();
    let code = out.status.code().expect("exited, not killed");
    assert_ne!(
        code,
        101,
        "demotape panicked: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (
        code,
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn total(v: &serde_json::Value) -> u64 {
    v["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["messages"].as_u64().unwrap())
        .sum()
}

#[test]
fn damaged_files_are_reported_precisely() {
    let dir = tempfile::tempdir().unwrap();
    let (summary, _) = record_sim(dir.path(), "small", 11, 0, 1, 2.0).remove(0);
    let good = std::fs::read(&summary.path).unwrap();

    // intact
    let (code, v, _) = inspect(&summary.path);
    assert_eq!(code, 0);
    assert_eq!(v["intact"], true);
    assert_eq!(
        total(&v),
        summary.total_messages()
            + 2
            + v["channels"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["topic"].as_str().unwrap().starts_with("/demotape/clock/"))
                .map(|c| c["messages"].as_u64().unwrap())
                .sum::<u64>()
    );
    let human = Command::new(bin("demotape"))
        .arg("inspect")
        .arg(&summary.path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&human.stdout);
    for needle in [
        "/joint_states",
        "sensor_msgs/msg/Image",
        "intact",
        "clock sync",
    ] {
        assert!(
            text.contains(needle),
            "human output lacks {needle}:\n{text}"
        );
    }

    // truncated at several points: exit 1, error names file and byte offset, prefix readable
    let mut last_total = 0;
    for frac in [0.3, 0.6, 0.95] {
        let cut = (good.len() as f64 * frac) as usize;
        let p = dir.path().join(format!("trunc_{frac}.mcap"));
        std::fs::write(&p, &good[..cut]).unwrap();
        let (code, v, err) = inspect(&p);
        assert_eq!(code, 1, "truncated file must fail");
        assert!(
            err.contains(&p.display().to_string()) && err.contains("byte "),
            "stderr: {err}"
        );
        assert_eq!(v["intact"], false);
        let t = total(&v);
        assert!(
            t > last_total,
            "more of the file, more readable messages ({t} <= {last_total})"
        );
        assert!(t < summary.total_messages());
        last_total = t;
    }

    // a corrupted chunk: that chunk is lost, the others still count
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    for b in &mut bad[mid..mid + 64] {
        *b ^= 0x5a;
    }
    let p = dir.path().join("corrupt.mcap");
    std::fs::write(&p, &bad).unwrap();
    let (code, v, err) = inspect(&p);
    assert_eq!(code, 1);
    assert!(
        err.contains("corrupt.mcap") && err.contains("byte "),
        "{err}"
    );
    let t = total(&v);
    assert!(t > 0 && t < summary.total_messages() + 1000, "{t}");

    // not MCAP at all
    let p = dir.path().join("junk.mcap");
    std::fs::write(&p, b"hello, this is not a recording").unwrap();
    let out = Command::new(bin("demotape"))
        .arg("inspect")
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("junk.mcap: not an MCAP file"));

    // a missing file
    let out = Command::new(bin("demotape"))
        .arg("inspect")
        .arg(dir.path().join("nope.mcap"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.mcap"));
}

#[test]
fn random_damage_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let (summary, _) = record_sim(dir.path(), "small", 12, 0, 1, 1.0).remove(0);
    let good = std::fs::read(&summary.path).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let p = dir.path().join("mutant.mcap");
    for i in 0..600 {
        let mut m = good.clone();
        match i % 3 {
            0 => m.truncate(rng.gen_range(8..m.len())),
            1 => {
                for _ in 0..rng.gen_range(1..20) {
                    let at = rng.gen_range(8..m.len());
                    m[at] = rng.r#gen();
                }
            }
            _ => {
                // overwrite a length field-sized run with huge values
                let at = rng.gen_range(8..m.len() - 8);
                m[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
            }
        }
        std::fs::write(&p, &m).unwrap();
        let r = Inspection::run(&p).expect("MCAP magic intact");
        if m != good {
            assert!(!r.intact || r.messages > 0);
        }
    }
}

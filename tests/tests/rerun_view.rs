//! `demotape view --save`: a simulated, annotated episode becomes an .rrd that rerun-sdk
//! 0.36.3's own command line verifies, with the expected entity paths and as many rows per
//! stream as the MCAP has messages (tests/python/check_rrd.py).

use demotape_e2e::{bin, record_sim, run_python};
use std::process::Command;

#[test]
fn view_saves_an_rrd_rerun_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let eps = record_sim(dir.path(), "small", 8, 0, 1, 4.0);
    let ep = &eps[0].0.path;
    let st = Command::new(bin("demotape"))
        .arg("annotate")
        .arg(ep)
        .output()
        .unwrap();
    assert!(st.status.success());
    let rrd = dir.path().join("ep.rrd");
    let out = Command::new(bin("demotape"))
        .args(["view", "--json", "--save"])
        .arg(&rrd)
        .arg(ep)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rep: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rep["skipped"], 0, "{rep}");
    let checked: serde_json::Value = serde_json::from_slice(&run_python(
        "check_rrd.py",
        &[&rrd, ep, &ep.with_extension("annotations.json")],
    ))
    .unwrap();
    assert!(checked["checked"].as_u64().unwrap() > 30, "{checked}");

    // no sink is a usage error; a file that is not an MCAP is named
    let out = Command::new(bin("demotape"))
        .arg("view")
        .arg(ep)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let bogus = dir.path().join("bogus.mcap");
    std::fs::write(&bogus, b"nope").unwrap();
    let out = Command::new(bin("demotape"))
        .args(["view", "--save"])
        .arg(dir.path().join("b.rrd"))
        .arg(&bogus)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bogus.mcap") && err.contains("not an MCAP"),
        "{err}"
    );
}

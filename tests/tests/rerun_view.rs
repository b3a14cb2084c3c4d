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

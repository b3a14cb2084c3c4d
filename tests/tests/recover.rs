//! `demotape recover`: a truncated or corrupted recording becomes a valid indexed file with
//! every readable message bit-exact, and the losses are stated.

use annotate::inspect::Inspection;
use demotape_e2e::{bin, record_sim};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// (topic, sequence, log_time) -> payload bytes
fn messages(path: &Path) -> BTreeMap<(String, u32, u64), Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    mcap::MessageStream::new(&bytes)
        .unwrap()
        .map(|m| {
            let m = m.unwrap();
            (
                (m.channel.topic.clone(), m.sequence, m.log_time),
                m.data.into_owned(),
            )
        })
        .collect()
}

fn recover(input: &Path, output: &Path) -> (i32, serde_json::Value) {
    let out = Command::new(bin("demotape"))
        .arg("recover")
        .arg("--json")
        .arg(input)
        .arg(output)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        serde_json::from_slice(&out.stdout).unwrap_or_default(),
    )
}

#[test]
fn truncated_and_corrupted_files_are_recovered_with_losses_stated() {
    let dir = tempfile::tempdir().unwrap();
    let (summary, _) = record_sim(dir.path(), "small", 31, 0, 1, 3.0).remove(0);
    let original = messages(&summary.path);
    let good = std::fs::read(&summary.path).unwrap();

    // intact input: everything, exit 0
    let out = dir.path().join("same.mcap");
    let (code, rep) = recover(&summary.path, &out);
    assert_eq!(code, 0, "{rep}");
    assert_eq!(messages(&out), original);

    // cut off mid-file (a crash): exit 3, valid output, every readable message bit-exact
    let cut = dir.path().join("cut.mcap");
    std::fs::write(&cut, &good[..good.len() * 6 / 10]).unwrap();
    let readable = Inspection::run(&cut).unwrap().messages;
    let out = dir.path().join("cut.recovered.mcap");
    let (code, rep) = recover(&cut, &out);
    assert_eq!(code, 3, "{rep}");
    let ins = Inspection::run(&out).unwrap();
    assert!(ins.intact, "{:?}", ins.problems);
    let got = messages(&out);
    assert_eq!(
        got.len() as u64,
        readable,
        "every readable message recovered"
    );
    for (k, v) in &got {
        assert_eq!(original.get(k), Some(v), "{k:?} differs from the original");
    }
    let loss = &rep["losses"][0];
    assert!(
        loss["reason"].as_str().unwrap().contains("cut off"),
        "{rep}"
    );
    // a cut-off chunk states the time range it held; a cut-off index states that no data
    // was in it
    assert!(
        loss["log_start_ns"].as_u64().is_some()
            || loss["reason"]
                .as_str()
                .unwrap()
                .contains("nothing of the data is lost"),
        "{rep}"
    );
    // the episode metadata written at the start survives
    assert!(ins.metadata.contains_key("demotape.episode"));
    assert!(ins.metadata.contains_key("demotape.recovered"));

    // a corrupted chunk in a complete file: its messages are the only loss, counted per topic
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    for b in &mut bad[mid..mid + 32] {
        *b ^= 0xa5;
    }
    let damaged = dir.path().join("damaged.mcap");
    std::fs::write(&damaged, &bad).unwrap();
    let out = dir.path().join("damaged.recovered.mcap");
    let (code, rep) = recover(&damaged, &out);
    assert_eq!(code, 3, "{rep}");
    let got = messages(&out);
    let missing: u64 = rep["missing_vs_metadata"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    let recovered_sensor: u64 = rep["recovered"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(t, _)| !t.starts_with("/demotape/"))
        .map(|(_, v)| v.as_u64().unwrap())
        .sum();
    assert!(missing > 0);
    assert_eq!(
        recovered_sensor + missing,
        summary.total_messages(),
        "recovered + stated losses = what was recorded"
    );
    for (k, v) in &got {
        assert_eq!(original.get(k), Some(v));
    }
}

/// `recover /dev/zero OUT` read forever; `recover` on a magic-only file said nothing was lost.
#[test]
fn devices_and_empty_files_are_refused_or_reported_lost() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("zero.mcap");
    let t0 = std::time::Instant::now();
    let (code, _) = recover(Path::new("/dev/zero"), &out);
    assert_eq!(code, 1);
    assert!(t0.elapsed().as_secs() < 30);
    assert!(!out.exists());
    let magic = dir.path().join("magic.mcap");
    std::fs::write(&magic, b"\x89MCAP0\r\n").unwrap();
    let out = dir.path().join("magic.recovered.mcap");
    let (code, rep) = recover(&magic, &out);
    assert_eq!(code, 3, "{rep}");
    assert_eq!(rep["input_was_intact"], false);
    assert!(
        rep["losses"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("without a Header"),
        "{rep}"
    );
}

/// A corrupted footer offset left every message readable, and `recover` called the input
/// intact ("nothing was lost") although readers that trust the summary fail on it.
#[test]
fn a_damaged_summary_is_not_called_intact() {
    let dir = tempfile::tempdir().unwrap();
    let (summary, _) = record_sim(dir.path(), "small", 32, 0, 1, 2.0).remove(0);
    let mut b = std::fs::read(&summary.path).unwrap();
    // the footer: opcode, length, summary_start (8 bytes), ... then the 8-byte magic
    let footer = b.len() - 8 - 9 - 20;
    assert_eq!(b[footer], 0x02);
    b[footer + 9] ^= 0x10;
    let bad = dir.path().join("bad_footer.mcap");
    std::fs::write(&bad, &b).unwrap();
    let out = dir.path().join("fixed.mcap");
    let (code, rep) = recover(&bad, &out);
    assert_eq!(code, 0, "no message was lost: {rep}");
    assert_eq!(rep["input_was_intact"], false, "{rep}");
    assert_eq!(messages(&out), messages(&summary.path));
}

//! A write error mid-episode (here the file-size limit, `ulimit -f`, which fails writes with
//! EFBIG exactly as a full disk fails them with ENOSPC) must end the recording cleanly: a
//! clear error naming the file, exit 1, and a valid MCAP holding everything up to the last
//! flush that our `inspect` and the Python `mcap` reader both read.

use demotape_e2e::{bin, python};
use std::process::Command;

#[test]
fn write_error_closes_a_valid_file_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = bin("demotape-recorder");
    // 20,000 KiB: reached after ~2 s of the small load
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f 20000; exec '{}' sim --out '{}' --duration 8 --load small",
            rec.display(),
            tmp.path().display()
        ))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("File too large"),
        "the OS error is named: {err}"
    );
    assert!(err.contains("closed cleanly at byte"), "{err}");
    let file = std::fs::read_dir(tmp.path().join("sim-robot"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "mcap"))
        .unwrap();
    assert!(err.contains(&file.display().to_string()), "{err}");
    let len = std::fs::metadata(&file).unwrap().len();
    assert!(len <= 20000 * 1024, "{len}");

    let insp = Command::new(bin("demotape"))
        .args(["inspect", "--json"])
        .arg(&file)
        .output()
        .unwrap();
    // a valid file, but not a complete recording: inspect says so (exit 1) and why
    assert_eq!(
        insp.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&insp.stdout)
    );
    let v: serde_json::Value = serde_json::from_slice(&insp.stdout).unwrap();
    assert_eq!(v["intact"], false);
    assert_eq!(
        v["problems"].as_array().unwrap().len(),
        1,
        "{}",
        v["problems"]
    );
    assert!(
        v["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("closed this episode after a write error: "),
        "{}",
        v["problems"]
    );
    let ours = v["messages"].as_u64().unwrap();
    assert!(ours > 1000, "{v}");
    assert!(
        v["metadata"]["demotape.episode_end"]["error"]
            .as_str()
            .unwrap()
            .contains("File too large"),
        "the error is recorded in the file: {}",
        v["metadata"]
    );
    let py = Command::new(python())
        .arg("-c")
        .arg(
            "import sys\nfrom mcap.reader import make_reader\nfrom mcap_ros2.decoder import DecoderFactory\n\
             n=0\nwith open(sys.argv[1],'rb') as f:\n    r=make_reader(f, decoder_factories=[DecoderFactory()])\n    \
             for s,c,m,d in r.iter_decoded_messages(): n+=1\nprint(n)",
        )
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let theirs: u64 = String::from_utf8_lossy(&py.stdout).trim().parse().unwrap();
    assert_eq!(theirs, ours, "Python mcap decodes every message we count");
    // the message says what it counts: the sensor messages in the file (the recorder's own
    // clock and event messages aside), and how many were lost after the last flush
    let held: u64 = err
        .split("it holds ")
        .nth(1)
        .and_then(|r| r.split(" sensor messages").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no sensor message count in: {err}"));
    let sensor: u64 = v["channels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| !c["topic"].as_str().unwrap().starts_with("/demotape/"))
        .map(|c| c["messages"].as_u64().unwrap())
        .sum();
    assert_eq!(held, sensor, "{err}");
    assert!(err.contains("written after that flush are lost"), "{err}");
}

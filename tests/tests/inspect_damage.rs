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

/// Top-level records of an MCAP file: (offset, opcode, body length).
fn top_records(b: &[u8]) -> Vec<(usize, u8, usize)> {
    let mut v = Vec::new();
    let mut off = 8;
    while off + 9 <= b.len() {
        let op = b[off];
        let len = u64::from_le_bytes(b[off + 1..off + 9].try_into().unwrap()) as usize;
        v.push((off, op, len));
        if op == 0x02 {
            break;
        }
        off += 9 + len;
    }
    v
}

fn problems(v: &serde_json::Value) -> String {
    v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("@{} {}\n", p["offset"], p["message"].as_str().unwrap()))
        .collect()
}

/// Damage each part of a file a viewer or the other commands trust — the footer, a chunk's
/// opcode, the chunk index, a message index, any byte the data-section CRC covers — and a
/// log time no clock gives: every one used to pass as "intact" (exit 0).
#[test]
fn damage_outside_the_chunks_is_not_intact() {
    let dir = tempfile::tempdir().unwrap();
    let (summary, _) = record_sim(dir.path(), "small", 12, 0, 1, 2.0).remove(0);
    let good = std::fs::read(&summary.path).unwrap();
    let recs = top_records(&good);
    let (code, v, _) = inspect(&summary.path);
    assert_eq!(code, 0, "{}", problems(&v));
    let case = |name: &str, bytes: &[u8], want: &str| {
        let p = dir.path().join(format!("{name}.mcap"));
        std::fs::write(&p, bytes).unwrap();
        let (code, v, err) = inspect(&p);
        assert_eq!(code, 1, "{name}: {err}\n{}", problems(&v));
        assert_eq!(v["intact"], false, "{name}");
        let ps = problems(&v);
        assert!(ps.contains(want), "{name}: wanted {want:?} in\n{ps}");
    };

    // the footer's summary_start (bytes 0..8 of the footer body)
    let footer = recs.iter().find(|r| r.1 == 0x02).unwrap().0;
    let mut b = good.clone();
    b[footer + 9] ^= 0x10;
    case("footer", &b, "footer says the summary starts at byte");

    // the first chunk's opcode, flipped to a reserved one: its messages are lost with it, and
    // the index that points at it is caught (schema and channel records are outside chunks)
    let first_chunk = recs.iter().find(|r| r.1 == 0x06).unwrap().0;
    let mut b = good.clone();
    b[first_chunk] = 0x16;
    case("opcode", &b, "reserved opcode 0x16");
    case("opcode", &b, "where no chunk starts");

    // the chunk index's chunk_start_offset (body bytes 16..24)
    let ci = recs.iter().find(|r| r.1 == 0x08).unwrap().0;
    let mut b = good.clone();
    b[ci + 9 + 16] ^= 0x01;
    case("chunk_index", &b, "chunk index points at byte");

    // a message index entry's offset (body: channel u16, entries length u32, then
    // (log_time u64, offset u64) pairs)
    let mi = recs.iter().find(|r| r.1 == 0x07 && r.2 >= 22).unwrap().0;
    let mut b = good.clone();
    b[mi + 9 + 6 + 8] ^= 0x01;
    case("message_index", &b, "message index for channel");

    // one character of the configuration in the episode metadata: only the CRC can tell
    let md = recs.iter().find(|r| r.1 == 0x0c).unwrap();
    let mut b = good.clone();
    let at = md.0 + 9 + md.2 - 3;
    b[at] = if b[at] == b'a' { b'b' } else { b'a' };
    case("data_crc", &b, "data section CRC mismatch");

    // a log time of u64::MAX in an otherwise valid file
    let p = dir.path().join("max.mcap");
    {
        let mut w = mcap::WriteOptions::new()
            .create(std::io::BufWriter::new(std::fs::File::create(&p).unwrap()))
            .unwrap();
        let ch = w.add_channel(0, "/x", "json", &Default::default()).unwrap();
        for t in [1_700_000_000_000_000_000, u64::MAX] {
            w.write_to_known_channel(
                &mcap::records::MessageHeader {
                    channel_id: ch,
                    sequence: 0,
                    log_time: t,
                    publish_time: t,
                },
                b"{}",
            )
            .unwrap();
        }
        w.finish().unwrap();
    }
    let (code, v, _) = inspect(&p);
    assert_eq!(code, 1);
    assert!(
        problems(&v).contains("after the year 2262"),
        "{}",
        problems(&v)
    );
}

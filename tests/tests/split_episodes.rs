//! An episode the recorder split into parts (`demotape.split` → `next_part`, the
//! `<id>_partNNN.mcap` files `run` writes with `control.split_max_*`) is one demonstration to
//! the companion tool: `annotate`, `export lerobot` and `view` given its directory or its first
//! part give exactly what they give for the same episode recorded in one file.
//!
//! The parts are cut here from a simulated episode by time, with the recorder's part metadata
//! (the seams `run` itself makes are checked in zenoh_e2e.rs).

use demotape_e2e::{demotape, record_sim, run_python};
use mcap::records::Record;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

type Meta = BTreeMap<String, BTreeMap<String, String>>;

/// Cut `src` into `n` parts of equal duration in `dir`, named and labelled like `run`'s.
fn split(src: &Path, dir: &Path, n: usize) -> Vec<PathBuf> {
    let data = std::fs::read(src).unwrap();
    let mut meta: Meta = BTreeMap::new();
    for rec in mcap::read::LinearReader::new(&data).unwrap() {
        if let Record::Metadata(m) = rec.unwrap() {
            meta.insert(m.name, m.metadata);
        }
    }
    let mut msgs: Vec<mcap::Message> = mcap::MessageStream::new(&data)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    msgs.sort_by_key(|m| m.log_time);
    let (t0, t1) = (msgs[0].log_time, msgs.last().unwrap().log_time + 1);
    let id = meta["demotape.episode"]["episode_id"].clone();
    let name = |i: usize| {
        if i == 0 {
            format!("{id}.mcap")
        } else {
            format!("{id}_part{i:03}.mcap")
        }
    };
    let mut files = Vec::new();
    for i in 0..n {
        let (a, b) = (
            t0 + (t1 - t0) * i as u64 / n as u64,
            t0 + (t1 - t0) * (i as u64 + 1) / n as u64,
        );
        let path = dir.join(name(i));
        let mut w = mcap::WriteOptions::new()
            .profile("ros2")
            .compression(Some(mcap::Compression::Zstd))
            .create(std::io::BufWriter::new(
                std::fs::File::create(&path).unwrap(),
            ))
            .unwrap();
        let mut count = 0u64;
        for m in msgs.iter().filter(|m| (a..b).contains(&m.log_time)) {
            w.write(m).unwrap();
            count += 1;
        }
        for (k, v) in &meta {
            let mut v = v.clone();
            match k.as_str() {
                "demotape.episode" => {
                    v.insert("part".into(), i.to_string());
                    if i > 0 {
                        v.insert("previous_part".into(), name(i - 1));
                    }
                }
                // written when the episode stops: in its last part
                "demotape.labels" if i + 1 < n => continue,
                "demotape.episode_end" => {
                    if i + 1 < n {
                        v.insert("end_ns".into(), (b - 1).to_string());
                    }
                    v.insert("messages".into(), count.to_string());
                    if i > 0 {
                        v.insert("drops".into(), "0".into());
                    }
                }
                _ => {}
            }
            w.write_metadata(&mcap::records::Metadata {
                name: k.clone(),
                metadata: v,
            })
            .unwrap();
        }
        if i + 1 < n {
            w.write_metadata(&mcap::records::Metadata {
                name: "demotape.split".into(),
                metadata: BTreeMap::from([
                    ("part".into(), i.to_string()),
                    ("next_part".into(), name(i + 1)),
                    ("reason".into(), "duration".into()),
                ]),
            })
            .unwrap();
        }
        w.finish().unwrap();
        files.push(path);
    }
    files
}

#[test]
fn a_split_episode_is_annotated_exported_and_viewed_as_one() {
    let tmp = tempfile::tempdir().unwrap();
    let whole_dir = tmp.path().join("whole");
    let eps = record_sim(&whole_dir, "small", 5, 0, 1, 6.0);
    let whole = eps[0].0.path.clone();
    let split_dir = tmp.path().join("split");
    std::fs::create_dir_all(&split_dir).unwrap();
    let parts = split(&whole, &split_dir, 3);

    // annotate: one episode, the same phases and outcome as the whole file's
    let (code, a_whole, err) = demotape(&["annotate", "--json"], &[&whole_dir]);
    assert_eq!(code, 0, "{err}");
    let (code, a_split, err) = demotape(&["annotate", "--json"], &[&split_dir]);
    assert_eq!(code, 0, "{err}");
    let (w, s) = (&a_whole, &a_split);
    assert_eq!(s.as_array().unwrap().len(), 1, "{a_split:#}");
    for k in [
        "outcome",
        "phases",
        "pass",
        "confidence",
        "gates",
        "evidence",
    ] {
        assert_eq!(s[0][k], w[0][k], "{k}: split {:#} whole {:#}", s[0], w[0]);
    }
    assert!(!w[0]["phases"].as_array().unwrap().is_empty());
    assert!(
        split_dir
            .join(format!(
                "{}.annotations.json",
                parts[0].file_stem().unwrap().to_string_lossy()
            ))
            .exists()
    );

    // export: the same dataset (same frames, same statistics of every feature)
    let export = |src: &Path, out: &Path| {
        let (code, rep, err) = demotape(
            &["export", "lerobot", "--json", "--fps", "30", "--out"],
            &[out, src],
        );
        assert_eq!(code, 0, "{err}");
        rep
    };
    let (dw, ds) = (tmp.path().join("dw"), tmp.path().join("ds"));
    let (rw, rs) = (export(&whole_dir, &dw), export(&split_dir, &ds));
    assert_eq!(rs["kept"].as_array().unwrap().len(), 1, "{rs:#}");
    assert_eq!(rs["total_frames"], rw["total_frames"]);
    assert!(rw["total_frames"].as_u64().unwrap() > 150, "{rw}");
    let stats = |d: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(d.join("meta/stats.json")).unwrap()).unwrap()
    };
    assert_eq!(
        stats(&ds),
        stats(&dw),
        "statistics of the split export differ"
    );
    // and the values are the MCAP parts' at the grid times (third-party readers only)
    let checked: serde_json::Value =
        serde_json::from_slice(&run_python("check_lerobot.py", &[&ds])).unwrap();
    assert_eq!(checked["frames"], rw["total_frames"], "{checked}");

    // view from the first part: every row the whole file gives
    let view = |src: &Path, rrd: &Path| {
        let (code, rep, err) = demotape(&["view", "--json", "--save"], &[rrd, src]);
        assert_eq!(code, 0, "{err}");
        rep
    };
    let vw = view(&whole, &tmp.path().join("w.rrd"));
    let vs = view(&parts[0], &tmp.path().join("s.rrd"));
    assert_eq!(vs["parts"].as_array().unwrap().len(), 3);
    assert_eq!(vs["messages"], vw["messages"]);
    let rows = |v: &serde_json::Value| v["rows"].as_object().unwrap().clone();
    let (r_w, r_s) = (rows(&vw), rows(&vs));
    assert_eq!(r_s, r_w);

    // a missing later part: annotate reads up to it, export leaves the episode out, naming it
    std::fs::remove_file(&parts[2]).unwrap();
    let (code, _, err) = demotape(
        &["export", "lerobot", "--json", "--fps", "30", "--out"],
        &[&tmp.path().join("dm"), &split_dir],
    );
    assert_eq!(code, 1, "{err}");
    let name = parts[2].display().to_string();
    assert!(
        err.contains(&format!("its later part {name} is missing")),
        "{err}"
    );
    let (code, a, err) = demotape(&["annotate", "--json"], &[&parts[0]]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&name), "{err}");
    let last_end = |v: &serde_json::Value| {
        v[0]["phases"].as_array().unwrap().last().unwrap()["end_ns"]
            .as_u64()
            .unwrap()
    };
    assert!(
        last_end(&a) < last_end(&a_whole),
        "read up to the missing part only"
    );
}

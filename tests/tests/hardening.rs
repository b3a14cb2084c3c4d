//! Regression tests for the defects outside checks found (issue "Opens in Foxglove and
//! Lichtblick; nothing lost or misreported under faults"), each through the real binaries:
//! the viewer timeline as Foxglove's own reader (`@mcap/core`) derives it, the export and
//! import never losing or half-writing a dataset, the recorder on a disk that is full from
//! the start, and companion files never taken for episodes.

use demotape_e2e::{assert_viewer_timeline, bin, demotape, foxglove_reader, record_sim};
use std::path::{Path, PathBuf};
use std::process::Command;

fn mcaps(dir: &Path) -> Vec<PathBuf> {
    files_with_ext(dir, "mcap")
}

/// Files under `dir` (recursively) whose extension is `ext`, sorted.
fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v = Vec::new();
    fn walk(d: &Path, ext: &str, v: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, ext, v);
            } else if p.extension().is_some_and(|x| x == ext) {
                v.push(p);
            }
        }
    }
    walk(dir, ext, &mut v);
    v.sort();
    v
}

/// Lichtblick takes the timeline start from the smallest chunk-index start: a chunk without
/// messages (0..0) made it 1970. Every kind of file we write must give the Statistics range.
#[test]
fn every_file_we_write_has_the_viewer_timeline_of_its_messages() {
    let tmp = tempfile::tempdir().unwrap();
    // recorded by the real binary
    let out = Command::new(bin("demotape-recorder"))
        .args([
            "sim",
            "--episodes",
            "1",
            "--duration",
            "2",
            "--load",
            "small",
            "--out",
        ])
        .arg(tmp.path().join("rec"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recorded = mcaps(&tmp.path().join("rec"));
    assert_eq!(recorded.len(), 1);
    let r = assert_viewer_timeline(&recorded[0]);
    assert!(r["messages_read"].as_u64().unwrap() > 500, "{r}");
    let start: u64 = r["chunk_start"].as_str().unwrap().parse().unwrap();
    assert!(
        start > 1_600_000_000_000_000_000,
        "timeline starts in 1970: {r}"
    );

    // (the parts `run` splits an episode into are checked the same way in zenoh_e2e.rs)

    // annotation layers: automatic, then human after a correction
    let (code, _, err) = demotape(&["annotate", "--json"], &[&recorded[0]]);
    assert_eq!(code, 0, "{err}");
    let auto = recorded[0].with_extension("annotations.mcap");
    assert_viewer_timeline(&auto);
    let side = recorded[0].with_extension("annotations.json");
    let (code, _, err) = demotape(
        &[
            "review",
            "correct",
            "--outcome",
            "slip",
            "--author",
            "ci",
            "--reason",
            "test",
        ],
        &[&side],
    );
    assert_eq!(code, 0, "{err}");
    assert_viewer_timeline(&recorded[0].with_extension("annotations.human.mcap"));

    // recovered from a truncated copy
    let bytes = std::fs::read(&recorded[0]).unwrap();
    let cut = tmp.path().join("cut.mcap");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let rec_out = tmp.path().join("recovered.mcap");
    let (code, _, err) = demotape(&["recover", "--json"], &[&cut, &rec_out]);
    assert_eq!(code, 3, "a cut file lost data: {err}");
    assert_viewer_timeline(&rec_out);

    // imported from a LeRobot export
    let ds = tmp.path().join("ds");
    let (code, _, err) = demotape(
        &["export", "lerobot", "--gates", "ignore", "--out"],
        &[&ds, &recorded[0]],
    );
    assert_eq!(code, 0, "{err}");
    let imported = tmp.path().join("imported");
    let (code, _, err) = demotape(&["import", "lerobot", "--out"], &[&imported, &ds]);
    assert_eq!(code, 0, "{err}");
    let imp = mcaps(&imported);
    assert_eq!(imp.len(), 1);
    assert_viewer_timeline(&imp[0]);

    // and the reader itself notices a chunk without messages (the old first chunk)
    let empty_first = tmp.path().join("empty_first.mcap");
    {
        let f = std::fs::File::create(&empty_first).unwrap();
        let mut w = mcap::WriteOptions::new()
            .create(std::io::BufWriter::new(f))
            .unwrap();
        let ch = w.add_channel(0, "/x", "json", &Default::default()).unwrap();
        w.write_metadata(&mcap::records::Metadata {
            name: "m".into(),
            metadata: Default::default(),
        })
        .unwrap();
        w.write_to_known_channel(
            &mcap::records::MessageHeader {
                channel_id: ch,
                sequence: 0,
                log_time: 1_700_000_000_000_000_000,
                publish_time: 1_700_000_000_000_000_000,
            },
            b"{}",
        )
        .unwrap();
        w.finish().unwrap();
    }
    let r = foxglove_reader(&[&empty_first]).remove(0);
    assert_eq!(r["empty_chunks"], 1, "{r}");
    assert_eq!(r["chunk_start"], "0", "{r}");
    assert_ne!(r["chunk_start"], r["stats_start"], "{r}");
}

/// `--out DIR/` built the dataset in `DIR/.partial` inside DIR, then removed DIR (and with
/// it the new dataset) before the rename; with `--force` the old dataset went too.
#[test]
fn export_to_a_path_with_a_trailing_slash_keeps_the_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let eps = tmp.path().join("eps");
    record_sim(&eps, "small", 3, 0, 1, 3.0);
    let slash = format!("{}/", tmp.path().join("ds").display());
    let out = Command::new(bin("demotape"))
        .args([
            "export",
            "lerobot",
            "--no-images",
            "--gates",
            "ignore",
            "--out",
        ])
        .arg(&slash)
        .arg(&eps)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = tmp.path().join("ds/meta/info.json");
    assert!(info.exists(), "the dataset is where --out said");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&info).unwrap()).unwrap();
    assert_eq!(
        v["robot_type"], "sim-robot",
        "robot_type defaults to the recorder's robot id"
    );
    // again with --force and the slash: the new dataset replaces the old one, nothing else
    let out = Command::new(bin("demotape"))
        .args([
            "export",
            "lerobot",
            "--no-images",
            "--gates",
            "ignore",
            "--force",
            "--robot-type",
            "my_arm",
            "--out",
        ])
        .arg(format!("{slash}."))
        .arg(&eps)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&info).unwrap()).unwrap();
    assert_eq!(v["robot_type"], "my_arm");
    assert_eq!(v["total_episodes"], 1);
    let left: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut left = left;
    left.sort();
    assert_eq!(left, ["ds", "eps"], "no build or aside directory is left");
}

/// A disk that is full before the first byte: the recorder used to panic in the `mcap`
/// writer's drop (exit 101) and leave a 0-byte episode.
#[test]
fn a_disk_full_from_the_start_is_a_clear_error_and_leaves_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f 1; exec '{}' sim --out '{}' --duration 3 --load small",
            bin("demotape-recorder").display(),
            tmp.path().display()
        ))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("File too large"),
        "the OS error is named: {err}"
    );
    let left: Vec<PathBuf> = if tmp.path().join("sim-robot").exists() {
        mcaps(tmp.path())
    } else {
        Vec::new()
    };
    assert!(left.is_empty(), "no empty episode is left: {left:?}");
}

/// An import that fails half-way (a video file missing) left a joints-only MCAP without
/// metadata that `inspect` called intact. Now it leaves nothing, and says which file.
#[test]
fn an_import_that_fails_leaves_no_partial_episode() {
    let tmp = tempfile::tempdir().unwrap();
    let eps = tmp.path().join("eps");
    record_sim(&eps, "small", 4, 0, 1, 3.0);
    let ds = tmp.path().join("ds");
    let (code, _, err) = demotape(
        &["export", "lerobot", "--video", "--gates", "ignore", "--out"],
        &[&ds, &eps],
    );
    assert_eq!(code, 0, "{err}");
    let videos = files_with_ext(&ds.join("videos"), "mp4");
    assert!(!videos.is_empty());
    std::fs::remove_file(&videos[0]).unwrap();
    let out = tmp.path().join("imported");
    let (code, _, err) = demotape(&["import", "lerobot", "--out"], &[&out, &ds]);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains(&videos[0].file_name().unwrap().to_string_lossy().to_string()),
        "the missing file is named: {err}"
    );
    let left: Vec<String> = std::fs::read_dir(&out)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "nothing half-written is left: {left:?}");
}

/// After `review correct`, `<stem>.annotations.human.mcap` sits beside the episode; a second
/// `annotate DIR` (and `export`) took it for an episode and failed.
#[test]
fn companion_files_are_never_episodes() {
    let tmp = tempfile::tempdir().unwrap();
    let eps = tmp.path().join("eps");
    let rec = record_sim(&eps, "small", 6, 0, 2, 3.0);
    let (code, v, err) = demotape(&["annotate", "--json"], &[&eps]);
    assert_eq!(code, 0, "{err}");
    let n = v.as_array().map(|a| a.len()).unwrap_or(0);
    assert_eq!(n, 2, "{v}");
    let side = rec[0].0.path.with_extension("annotations.json");
    let (code, _, err) = demotape(
        &["review", "correct", "--outcome", "drop", "--author", "ci"],
        &[&side],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        rec[0]
            .0
            .path
            .with_extension("annotations.human.mcap")
            .exists()
    );
    let (code, v, err) = demotape(&["annotate", "--json"], &[&eps]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v.as_array().map(|a| a.len()), Some(2), "{v}");
    let ds = tmp.path().join("ds");
    let (code, rep, err) = demotape(
        &[
            "export",
            "lerobot",
            "--json",
            "--no-images",
            "--gates",
            "ignore",
            "--out",
        ],
        &[&ds, &eps],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(rep["kept"].as_array().unwrap().len(), 2, "{rep}");
    assert_eq!(rep["excluded"].as_array().unwrap().len(), 0, "{rep}");

    // a directory holding no episode is named in the error
    let empty = tmp.path().join("nothing here");
    std::fs::create_dir(&empty).unwrap();
    let (code, _, err) = demotape(&["annotate"], &[&empty]);
    assert_eq!(code, 2);
    assert!(err.contains("nothing here"), "{err}");
    let (code, _, err) = demotape(
        &["export", "lerobot", "--out"],
        &[&tmp.path().join("ds2"), &empty],
    );
    assert_ne!(code, 0);
    assert!(err.contains("nothing here"), "{err}");
}

/// Every JointState truncated: annotate said `miss` at confidence 0.00 (exit 0) instead of
/// calling the episode unreadable.
#[test]
fn an_episode_whose_joint_states_are_all_malformed_is_unreadable() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = record_sim(&tmp.path().join("eps"), "small", 8, 0, 1, 3.0);
    let data = std::fs::read(&rec[0].0.path).unwrap();
    let bad = tmp.path().join("bad.mcap");
    {
        let mut w = mcap::WriteOptions::new()
            .profile("ros2")
            .create(std::io::BufWriter::new(
                std::fs::File::create(&bad).unwrap(),
            ))
            .unwrap();
        for m in mcap::MessageStream::new(&data).unwrap() {
            let mut m = m.unwrap();
            if m.channel.topic == "/joint_states" {
                m.data = std::borrow::Cow::Owned(m.data[..30.min(m.data.len())].to_vec());
            }
            w.write(&m).unwrap();
        }
        for r in mcap::read::LinearReader::new(&data).unwrap() {
            if let mcap::records::Record::Metadata(md) = r.unwrap() {
                w.write_metadata(&md).unwrap();
            }
        }
        w.finish().unwrap();
    }
    let (code, _, err) = demotape(&["annotate"], &[&bad]);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("unreadable") && err.contains("/joint_states"),
        "{err}"
    );
    assert!(!bad.with_extension("annotations.json").exists());
}

/// Peak resident memory (KiB) of `demotape ARGS` (via Python's `getrusage` of its child).
fn peak_rss_kib(args: &[&std::ffi::OsStr]) -> (i32, u64) {
    let out = Command::new("python3")
        .arg("-c")
        .arg(
            "import resource, subprocess, sys\n\
             r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n\
             print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)",
        )
        .arg(bin("demotape"))
        .args(args)
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    let mut it = s.split_whitespace();
    (
        it.next().unwrap().parse().unwrap(),
        it.next().unwrap().parse().unwrap(),
    )
}

/// An ~9 MB file holding one honest 2 GiB lz4 chunk made `inspect` take 2 GB and `recover`
/// 4 GB: both now stream the chunk, in memory bounded by the largest record.
#[test]
fn a_huge_honest_chunk_is_walked_in_bounded_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("big.mcap");
    let per = 1usize << 20;
    let n = 2048u64;
    {
        let mut w = mcap::WriteOptions::new()
            .compression(Some(mcap::Compression::Lz4))
            .chunk_size(None)
            .create(std::io::BufWriter::new(
                std::fs::File::create(&big).unwrap(),
            ))
            .unwrap();
        let ch = w
            .add_channel(0, "/zeros", "raw", &Default::default())
            .unwrap();
        let zeros = vec![0u8; per];
        for i in 0..n {
            let t = 1_700_000_000_000_000_000 + i * 1_000_000;
            w.write_to_known_channel(
                &mcap::records::MessageHeader {
                    channel_id: ch,
                    sequence: i as u32,
                    log_time: t,
                    publish_time: t,
                },
                &zeros,
            )
            .unwrap();
        }
        w.finish().unwrap();
    }
    let file_mb = std::fs::metadata(&big).unwrap().len() as f64 / 1e6;
    assert!(file_mb < 20.0, "{file_mb} MB");
    let (code, rss) = peak_rss_kib(&["inspect".as_ref(), "--json".as_ref(), big.as_os_str()]);
    assert_eq!(code, 0);
    assert!(rss < 256 * 1024, "inspect peaked at {} MiB", rss / 1024);
    let out = tmp.path().join("out.mcap");
    let (code, rss) = peak_rss_kib(&["recover".as_ref(), big.as_os_str(), out.as_os_str()]);
    assert_eq!(code, 0);
    assert!(rss < 256 * 1024, "recover peaked at {} MiB", rss / 1024);
    let (code, v, err) = demotape(&["inspect", "--json"], &[&out]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["messages"], n, "{v}");
}

/// `annotate a b --out X` with an episode of the same file name in `a` and `b` wrote one
/// sidecar, whichever thread finished last. Now it refuses (exit 2), naming both.
#[test]
fn two_episodes_never_share_a_sidecar() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = record_sim(&tmp.path().join("a"), "small", 9, 0, 1, 2.0);
    let name = rec[0].0.path.file_name().unwrap().to_owned();
    let b = tmp.path().join("b");
    std::fs::create_dir(&b).unwrap();
    std::fs::copy(&rec[0].0.path, b.join(&name)).unwrap();
    let out = tmp.path().join("labels");
    let (code, _, err) = demotape(
        &["annotate", "--out", out.to_str().unwrap()],
        &[&tmp.path().join("a"), &b],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&rec[0].0.path.display().to_string())
            && err.contains(&b.join(&name).display().to_string()),
        "{err}"
    );
    assert!(!out.exists() || std::fs::read_dir(&out).unwrap().next().is_none());
    // beside each episode (no --out) both are annotated
    let (code, v, err) = demotape(&["annotate", "--json"], &[&tmp.path().join("a"), &b]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v.as_array().map(|a| a.len()), Some(2), "{v}");
}

/// Rewrite `src` into `dst`: `keep_channel(topic)` false drops a channel entirely;
/// `keep_messages(topic)` false keeps the channel but none of its messages.
fn rewrite(
    src: &Path,
    dst: &Path,
    keep_channel: impl Fn(&str) -> bool,
    keep_messages: impl Fn(&str) -> bool,
) {
    let data = std::fs::read(src).unwrap();
    let mut w = mcap::WriteOptions::new()
        .profile("ros2")
        .create(std::io::BufWriter::new(std::fs::File::create(dst).unwrap()))
        .unwrap();
    let summary = mcap::Summary::read(&data).unwrap().unwrap();
    let mut ids = std::collections::BTreeMap::new();
    for c in summary.channels.values() {
        if keep_channel(&c.topic) {
            let sid = match &c.schema {
                Some(s) => w.add_schema(&s.name, &s.encoding, &s.data).unwrap(),
                None => 0,
            };
            let id = w
                .add_channel(sid, &c.topic, &c.message_encoding, &c.metadata)
                .unwrap();
            ids.insert(c.topic.clone(), id);
        }
    }
    for m in mcap::MessageStream::new(&data).unwrap() {
        let m = m.unwrap();
        if keep_channel(&m.channel.topic) && keep_messages(&m.channel.topic) {
            w.write_to_known_channel(
                &mcap::records::MessageHeader {
                    channel_id: ids[&m.channel.topic],
                    sequence: m.sequence,
                    log_time: m.log_time,
                    publish_time: m.publish_time,
                },
                &m.data,
            )
            .unwrap();
        }
    }
    for r in mcap::read::LinearReader::new(&data).unwrap() {
        if let mcap::records::Record::Metadata(md) = r.unwrap() {
            w.write_metadata(&md).unwrap();
        }
    }
    w.finish().unwrap();
}

fn gate(sidecar: &Path, name: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(sidecar).unwrap()).unwrap();
    v["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == name)
        .cloned()
        .unwrap()
}

/// The missing_streams gate always wanted tactile: every episode of a robot without touch
/// sensors failed it. Missing now means declared in the recording but silent.
#[test]
fn a_robot_without_touch_sensors_misses_no_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = record_sim(&tmp.path().join("eps"), "small", 10, 0, 1, 3.0);
    let src = &rec[0].0.path;
    let no_touch = tmp.path().join("no_touch.mcap");
    rewrite(src, &no_touch, |t| !t.starts_with("/tactile/"), |_| true);
    let silent = tmp.path().join("silent_touch.mcap");
    rewrite(src, &silent, |_| true, |t| !t.starts_with("/tactile/"));
    let (code, _, err) = demotape(&["annotate", "--json"], &[&no_touch, &silent]);
    assert_eq!(code, 0, "{err}");
    let g = gate(
        &no_touch.with_extension("annotations.json"),
        "missing_streams",
    );
    assert_eq!(g["pass"], true, "{g}");
    let g = gate(
        &silent.with_extension("annotations.json"),
        "missing_streams",
    );
    assert_eq!(g["pass"], false, "{g}");
    assert!(g["detail"].as_str().unwrap().contains("/tactile/"), "{g}");
}

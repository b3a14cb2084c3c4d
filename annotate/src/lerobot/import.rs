//! `demotape import lerobot`: a LeRobot v3.0 dataset → one MCAP episode per dataset episode,
//! so it can be inspected, annotated, reviewed and re-exported with demotape.
//!
//! Mapping: `observation.state` → `/joint_states` (`sensor_msgs/msg/JointState`, names from
//! the feature's names without `.pos`), `action` → `/joint_commands` (the command stream the
//! exporter reads back as the action), image and video features → `/camera/<name>/image_raw`
//! (`rgb8`), the task → the `demotape.episode` metadata, a demotape outcome label →
//! `demotape.labels`. Frame `k` is written at `start + k/fps` with the exporter's integer
//! grid, so a re-export at the same fps samples exactly the imported values. Features with
//! no mapping are listed in the report, not guessed at.

use super::cdr::{decode_compressed, decode_depth_image};
use super::video::DepthQuant;
use super::{grid_offset_ns, sanitize};
use arrow_array::{
    Array, BinaryArray, FixedSizeListArray, Float32Array, Float64Array, Int64Array,
    LargeBinaryArray, ListArray, RecordBatch, StructArray,
};
use hal::msgs::{Header, Image, JointState, RosMessage, Time};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize)]
pub struct ImportReport {
    pub dataset: PathBuf,
    pub episodes: Vec<PathBuf>,
    pub frames: usize,
    /// Features that have no MCAP mapping and were left out.
    pub skipped_features: Vec<String>,
    /// The dataset's codebase version (v3.0 or v2.1).
    pub codebase_version: String,
    /// Video files the dataset declares but does not have, left out with
    /// `--skip-missing-videos` (their episodes are imported without that camera).
    pub missing_videos: Vec<PathBuf>,
}

fn read_jsonl(path: &Path) -> anyhow::Result<Vec<serde_json::Value>> {
    let text = std::fs::read_to_string(path).map_err(|e| err(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| err(path, format!("line {}: {e}", i + 1)))
        })
        .collect()
}

fn err(p: &Path, e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{}: {e}", p.display())
}

fn parquet_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    fn walk(d: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for e in std::fs::read_dir(d)? {
            let p = e?.path();
            if p.is_dir() {
                walk(&p, out)?;
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
        Ok(())
    }
    walk(dir, &mut out).map_err(|e| err(dir, e))?;
    out.sort();
    Ok(out)
}

fn read_all(path: &Path) -> anyhow::Result<Vec<RecordBatch>> {
    let f = std::fs::File::open(path).map_err(|e| err(path, e))?;
    let r = ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(|e| err(path, e))?
        .build()
        .map_err(|e| err(path, e))?;
    r.collect::<Result<Vec<_>, _>>().map_err(|e| err(path, e))
}

fn i64_col(b: &RecordBatch, name: &str, path: &Path) -> anyhow::Result<Vec<i64>> {
    let c = b
        .column_by_name(name)
        .ok_or_else(|| err(path, format!("no column {name}")))?;
    if let Some(a) = c.as_any().downcast_ref::<Int64Array>() {
        return Ok(a.values().to_vec());
    }
    Err(err(path, format!("column {name} is not int64")))
}

fn f64_col(b: &RecordBatch, name: &str) -> Option<Vec<f64>> {
    let c = b.column_by_name(name)?;
    if let Some(a) = c.as_any().downcast_ref::<Float64Array>() {
        return Some(a.values().to_vec());
    }
    c.as_any()
        .downcast_ref::<Float32Array>()
        .map(|a| a.values().iter().map(|x| f64::from(*x)).collect())
}

fn str_col(b: &RecordBatch, name: &str) -> Option<Vec<String>> {
    let c = b.column_by_name(name)?;
    let a = arrow_cast_strings(c.as_ref())?;
    Some(a)
}

fn arrow_cast_strings(a: &dyn Array) -> Option<Vec<String>> {
    if let Some(s) = a.as_any().downcast_ref::<arrow_array::StringArray>() {
        return Some((0..s.len()).map(|i| s.value(i).to_string()).collect());
    }
    if let Some(s) = a.as_any().downcast_ref::<arrow_array::LargeStringArray>() {
        return Some((0..s.len()).map(|i| s.value(i).to_string()).collect());
    }
    if let Some(s) = a.as_any().downcast_ref::<arrow_array::StringViewArray>() {
        return Some((0..s.len()).map(|i| s.value(i).to_string()).collect());
    }
    None
}

/// Vector values of row `i` of a list-like float column.
fn row_f64(c: &dyn Array, i: usize) -> Option<Vec<f64>> {
    let values = if let Some(l) = c.as_any().downcast_ref::<FixedSizeListArray>() {
        l.value(i)
    } else if let Some(l) = c.as_any().downcast_ref::<ListArray>() {
        l.value(i)
    } else if let Some(a) = c.as_any().downcast_ref::<Float32Array>() {
        return Some(vec![f64::from(a.value(i))]);
    } else if let Some(a) = c.as_any().downcast_ref::<Float64Array>() {
        return Some(vec![a.value(i)]);
    } else {
        return None;
    };
    if let Some(a) = values.as_any().downcast_ref::<Float32Array>() {
        return Some(a.values().iter().map(|x| f64::from(*x)).collect());
    }
    values
        .as_any()
        .downcast_ref::<Float64Array>()
        .map(|a| a.values().to_vec())
}

fn image_bytes(c: &dyn Array, i: usize) -> Option<Vec<u8>> {
    let s = c.as_any().downcast_ref::<StructArray>()?;
    let b = s.column_by_name("bytes")?;
    if let Some(b) = b.as_any().downcast_ref::<BinaryArray>() {
        return Some(b.value(i).to_vec());
    }
    b.as_any()
        .downcast_ref::<LargeBinaryArray>()
        .map(|b| b.value(i).to_vec())
}

fn joint_names(feature: &serde_json::Value, n: usize) -> Vec<String> {
    let flat = |a: &Vec<serde_json::Value>| -> Vec<String> {
        // v2.1 datasets nest one list: [["a", "b", ...]]
        match a.as_slice() {
            [serde_json::Value::Array(inner)] => inner
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
        }
    };
    let names: Vec<String> = feature["names"]
        .as_array()
        .map(flat)
        .or_else(|| {
            // older datasets: {"motors": [...]}
            feature["names"]
                .as_object()
                .and_then(|o| o.values().next())
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
        })
        .unwrap_or_default();
    if names.len() == n {
        names
            .into_iter()
            .map(|s| s.strip_suffix(".pos").map(str::to_string).unwrap_or(s))
            .collect()
    } else {
        (0..n).map(|i| format!("joint_{i}")).collect()
    }
}

/// Removes the file it names when dropped, unless disarmed (`None`).
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// One imported episode, written under a temporary name beside its final one
/// (`.<name>.partial`, which no command takes for an episode) and renamed into place by
/// [`Writer::commit`] once complete: an import that fails half-way (a missing video file,
/// a bad row) leaves no partial episode behind.
struct Writer {
    w: mcap::Writer<std::io::BufWriter<std::fs::File>>,
    /// Declared after `w`, so dropped after it: the file is removed once the writer is done.
    tmp: RemoveOnDrop,
    path: PathBuf,
    channels: BTreeMap<String, u16>,
    schemas: BTreeMap<&'static str, u16>,
    seq: u32,
    buf: Vec<u8>,
}

impl Writer {
    fn create(path: &Path) -> anyhow::Result<Self> {
        let name = path
            .file_name()
            .ok_or_else(|| err(path, "no file name"))?
            .to_string_lossy();
        let tmp = path.with_file_name(format!(".{name}.partial"));
        let f = std::fs::File::create(&tmp).map_err(|e| err(&tmp, e))?;
        let guard = RemoveOnDrop(Some(tmp));
        let w = mcap::WriteOptions::new()
            .profile("ros2")
            .library(concat!("demotape import ", env!("CARGO_PKG_VERSION")))
            .compression(Some(mcap::Compression::Zstd))
            .create(std::io::BufWriter::new(f))?;
        Ok(Writer {
            w,
            tmp: guard,
            path: path.to_path_buf(),
            channels: BTreeMap::new(),
            schemas: BTreeMap::new(),
            seq: 0,
            buf: Vec::new(),
        })
    }
    /// Finish the file and rename it into place; returns its final path.
    fn commit(mut self) -> anyhow::Result<PathBuf> {
        self.w.finish()?;
        let tmp = self.tmp.0.clone().expect("armed until committed");
        let mut inner = self.w.into_inner();
        std::io::Write::flush(&mut inner).map_err(|e| err(&tmp, e))?;
        inner.get_ref().sync_data().map_err(|e| err(&tmp, e))?;
        drop(inner);
        std::fs::rename(&tmp, &self.path).map_err(|e| err(&self.path, e))?;
        self.tmp.0 = None;
        Ok(self.path)
    }

    fn write<M: RosMessage>(&mut self, topic: &str, t: u64, m: &M) -> anyhow::Result<()> {
        let sid = match self.schemas.get(M::TYPE_NAME) {
            Some(s) => *s,
            None => {
                let s = self
                    .w
                    .add_schema(M::TYPE_NAME, "ros2msg", M::schema_text().as_bytes())?;
                self.schemas.insert(M::TYPE_NAME, s);
                s
            }
        };
        let ch = match self.channels.get(topic) {
            Some(c) => *c,
            None => {
                let c = self.w.add_channel(sid, topic, "cdr", &BTreeMap::new())?;
                self.channels.insert(topic.to_string(), c);
                c
            }
        };
        self.buf.clear();
        m.encode_into(&mut self.buf)?;
        self.seq += 1;
        self.w.write_to_known_channel(
            &mcap::records::MessageHeader {
                channel_id: ch,
                sequence: self.seq,
                log_time: t,
                publish_time: t,
            },
            &self.buf,
        )?;
        Ok(())
    }
}

/// Import the LeRobot v3.0 dataset at `dir` into `out` (one MCAP per episode).
/// Import a LeRobot dataset: codebase v3.0 (episodes share data and video files, indexed by
/// `meta/episodes/`) or v2.1 (one data file and one video per episode, `meta/*.jsonl`).
/// `skip_missing_videos`: an episode whose video file is absent is imported without that
/// camera (listed in the report) instead of failing.
pub fn import(
    dir: &Path,
    out: &Path,
    progress: bool,
    skip_missing_videos: bool,
) -> anyhow::Result<ImportReport> {
    let info_path = dir.join("meta/info.json");
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&info_path).map_err(|e| err(&info_path, e))?)
            .map_err(|e| err(&info_path, e))?;
    let version = info["codebase_version"].as_str().unwrap_or("").to_string();
    let v21 = version == "v2.1" || version == "v2.0";
    if version != "v3.0" && !v21 {
        anyhow::bail!(
            "{}: codebase_version {version:?}; v3.0 and v2.1 datasets are imported",
            info_path.display()
        );
    }
    let fps = info["fps"]
        .as_f64()
        .filter(|f| *f >= 1.0 && f.fract() == 0.0)
        .ok_or_else(|| err(&info_path, "fps must be a positive integer"))? as u32;
    let features = info["features"]
        .as_object()
        .ok_or_else(|| err(&info_path, "no features"))?
        .clone();
    let robot = info["robot_type"].as_str().unwrap_or("lerobot").to_string();
    // tasks: index (string) → task_index
    let tasks_path = dir.join(if v21 {
        "meta/tasks.jsonl"
    } else {
        "meta/tasks.parquet"
    });
    let mut tasks: BTreeMap<i64, String> = BTreeMap::new();
    if v21 {
        for t in read_jsonl(&tasks_path)? {
            let (Some(i), Some(name)) = (t["task_index"].as_i64(), t["task"].as_str()) else {
                anyhow::bail!(
                    "{}: a line without task_index and task",
                    tasks_path.display()
                );
            };
            tasks.insert(i, name.to_string());
        }
    }
    // v3.0: meta/tasks.parquet
    let task_batches = if v21 {
        Vec::new()
    } else {
        read_all(&tasks_path)?
    };
    for b in task_batches {
        let idx = i64_col(&b, "task_index", &tasks_path)?;
        let names = b
            .schema()
            .fields()
            .iter()
            .find(|f| f.name() != "task_index")
            .and_then(|f| str_col(&b, f.name()))
            .ok_or_else(|| err(&tasks_path, "no task string column"))?;
        tasks.extend(idx.into_iter().zip(names));
    }
    // episodes
    let mut episodes: Vec<BTreeMap<String, serde_json::Value>> = Vec::new();
    if v21 {
        // one data file and one video per episode: an episode's video starts at 0
        let chunks = info["chunks_size"]
            .as_i64()
            .filter(|c| *c > 0)
            .unwrap_or(1000);
        let ep_path = dir.join("meta/episodes.jsonl");
        for e in read_jsonl(&ep_path)? {
            let (Some(ei), Some(len)) = (e["episode_index"].as_i64(), e["length"].as_i64()) else {
                anyhow::bail!(
                    "{}: a line without episode_index and length",
                    ep_path.display()
                );
            };
            let mut m = BTreeMap::new();
            m.insert("episode_index".into(), ei.into());
            m.insert("from".into(), 0.into());
            m.insert("to".into(), len.into());
            for (key, f) in &features {
                if f["dtype"] == "video" {
                    m.insert(format!("{key}/chunk_index"), (ei / chunks).into());
                    m.insert(format!("{key}/file_index"), ei.into());
                    m.insert(format!("{key}/from_timestamp"), 0.0.into());
                }
            }
            episodes.push(m);
        }
    }
    // v3.0: meta/episodes/*.parquet
    let episode_files = if v21 {
        Vec::new()
    } else {
        parquet_files(&dir.join("meta/episodes"))?
    };
    for p in episode_files {
        for b in read_all(&p)? {
            let ei = i64_col(&b, "episode_index", &p)?;
            let from = i64_col(&b, "dataset_from_index", &p)?;
            let to = i64_col(&b, "dataset_to_index", &p)?;
            let outcome = str_col(&b, "demotape/outcome");
            let start = b.column_by_name("demotape/start_ns").and_then(|c| {
                c.as_any()
                    .downcast_ref::<Int64Array>()
                    .map(|a| a.values().to_vec())
            });
            for i in 0..b.num_rows() {
                let mut m = BTreeMap::new();
                m.insert("episode_index".into(), ei[i].into());
                m.insert("from".into(), from[i].into());
                m.insert("to".into(), to[i].into());
                if let Some(o) = &outcome {
                    m.insert("outcome".into(), o[i].clone().into());
                }
                if let Some(s) = &start {
                    m.insert("start_ns".into(), s[i].into());
                }
                for (key, f) in &features {
                    if f["dtype"] == "video" {
                        for part in ["chunk_index", "file_index"] {
                            let c = i64_col(&b, &format!("videos/{key}/{part}"), &p)?;
                            m.insert(format!("{key}/{part}"), c[i].into());
                        }
                        for part in ["from_timestamp", "to_timestamp"] {
                            let c = f64_col(&b, &format!("videos/{key}/{part}"))
                                .ok_or_else(|| err(&p, format!("no videos/{key}/{part}")))?;
                            m.insert(format!("{key}/{part}"), c[i].into());
                        }
                    }
                }
                episodes.push(m);
            }
        }
    }
    episodes.sort_by_key(|m| m["episode_index"].as_i64());
    std::fs::create_dir_all(out).map_err(|e| err(out, e))?;
    let name = sanitize(
        dir.file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
            .as_str(),
    );
    let state_names = features
        .get("observation.state")
        .map(|f| {
            let n = f["shape"][0].as_u64().unwrap_or(0) as usize;
            joint_names(f, n)
        })
        .unwrap_or_default();
    let action_names = features
        .get("action")
        .map(|f| {
            let n = f["shape"][0].as_u64().unwrap_or(0) as usize;
            joint_names(f, n)
        })
        .unwrap_or_default();
    // (key, dtype, height, width, depth quantizer when a depth map)
    let cams: Vec<(String, String, u32, u32, Option<DepthQuant>)> = features
        .iter()
        .filter(|(_, f)| f["dtype"] == "image" || f["dtype"] == "video")
        .map(|(k, f)| {
            (
                k.clone(),
                f["dtype"].as_str().unwrap_or("").to_string(),
                f["shape"][0].as_u64().unwrap_or(0) as u32,
                f["shape"][1].as_u64().unwrap_or(0) as u32,
                depth_quant(f),
            )
        })
        .collect();
    let known = [
        "observation.state",
        "action",
        "timestamp",
        "frame_index",
        "episode_index",
        "index",
        "task_index",
    ];
    let skipped: Vec<String> = features
        .iter()
        .filter(|(k, f)| {
            !known.contains(&k.as_str()) && f["dtype"] != "image" && f["dtype"] != "video"
        })
        .map(|(k, _)| k.clone())
        .collect();
    // an RGB camera as /camera/<name>/image_raw, a depth map <name>_depth as
    // /camera/<name>/depth (what the recorder writes, so a re-export names it the same)
    let cam_topic = |key: &str, depth: bool| {
        let name = sanitize(
            key.trim_start_matches("observation.images.")
                .trim_start_matches("observation."),
        );
        match name.strip_suffix("_depth") {
            Some(base) if depth => format!("/camera/{base}/depth"),
            _ if depth => format!("/camera/{name}/depth"),
            _ => format!("/camera/{name}/image_raw"),
        }
    };
    let bar = if progress {
        indicatif::ProgressBar::new(episodes.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    // stream the data files row by row, switching episodes as episode_index changes
    let mut report = ImportReport {
        dataset: dir.to_path_buf(),
        episodes: Vec::new(),
        frames: 0,
        skipped_features: skipped,
        codebase_version: version.clone(),
        missing_videos: Vec::new(),
    };
    let mut current: Option<Cur> = None;
    let finish = |cur: Option<Cur>, report: &mut ImportReport| -> anyhow::Result<()> {
        if let Some(Cur {
            ep,
            mut w,
            path,
            start,
            task,
        }) = cur
        {
            let e = episodes
                .iter()
                .find(|m| m["episode_index"].as_i64() == Some(ep))
                .ok_or_else(|| anyhow::anyhow!("episode {ep} is not in meta/episodes"))?;
            // videos: decode this episode's span of each video file
            for (key, dtype, h, wd, depth) in &cams {
                if dtype != "video" {
                    continue;
                }
                let chunk = e[&format!("{key}/chunk_index")].as_i64().unwrap_or(0);
                let vpath = dir.join(
                    info["video_path"]
                        .as_str()
                        .unwrap_or(
                            "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
                        )
                        .replace("{video_key}", key)
                        .replace("{episode_chunk:03d}", &format!("{chunk:03}"))
                        .replace("{episode_index:06d}", &format!("{ep:06}"))
                        .replace(
                            "{chunk_index:03d}",
                            &format!(
                                "{:03}",
                                e[&format!("{key}/chunk_index")].as_i64().unwrap_or(0)
                            ),
                        )
                        .replace(
                            "{file_index:03d}",
                            &format!(
                                "{:03}",
                                e[&format!("{key}/file_index")].as_i64().unwrap_or(0)
                            ),
                        ),
                );
                if !vpath.exists() && !skip_missing_videos {
                    anyhow::bail!(
                        "{}: episode {ep}'s video for {key} is missing (--skip-missing-videos \
                         imports such episodes without that camera)",
                        vpath.display()
                    );
                }
                if !vpath.exists() {
                    tracing::warn!(video = %vpath.display(), "missing: episode {ep} imported without {key}");
                    report.missing_videos.push(vpath);
                    continue;
                }
                let from = e[&format!("{key}/from_timestamp")].as_f64().unwrap_or(0.0);
                let len = (e["to"].as_i64().unwrap_or(0) - e["from"].as_i64().unwrap_or(0)).max(0)
                    as usize;
                let first = (from * f64::from(fps)).round() as usize;
                let topic = cam_topic(key, depth.is_some());
                if let Some(q) = depth {
                    super::video::decode_depth_frames(&vpath, *wd, *h, q, |i, mm| {
                        if i < first || i >= first + len {
                            return Ok(());
                        }
                        let t = start + grid_offset_ns((i - first) as u64, fps);
                        w.write(&topic, t, &depth_image(t, key, *wd, *h, &mm))
                    })?;
                    continue;
                }
                super::video::decode_frames(&vpath, *wd, *h, |i, rgb| {
                    if i < first || i >= first + len {
                        return Ok(());
                    }
                    let k = (i - first) as u64;
                    let t = start + grid_offset_ns(k, fps);
                    w.write(&topic, t, &rgb_image(t, key, *wd, *h, rgb.to_vec()))
                })?;
            }
            let mut md = BTreeMap::from([
                ("robot_id".to_string(), robot.clone()),
                ("episode_id".to_string(), format!("{name}_{ep:06}")),
                ("sequence".to_string(), ep.to_string()),
                ("task".to_string(), task),
                ("source".to_string(), format!("lerobot {}", dir.display())),
                ("start_ns".to_string(), start.to_string()),
            ]);
            md.insert("operator".into(), String::new());
            w.w.write_metadata(&mcap::records::Metadata {
                name: "demotape.episode".into(),
                metadata: md,
            })?;
            if let Some(o) = e
                .get("outcome")
                .and_then(|o| o.as_str())
                .filter(|o| !o.is_empty())
            {
                w.w.write_metadata(&mcap::records::Metadata {
                    name: "demotape.labels".into(),
                    metadata: BTreeMap::from([("outcome".to_string(), o.to_string())]),
                })?;
            }
            report.episodes.push(w.commit()?);
            let _ = path;
        }
        Ok(())
    };
    for p in parquet_files(&dir.join("data"))? {
        let f = std::fs::File::open(&p).map_err(|e| err(&p, e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(f)
            .map_err(|e| err(&p, e))?
            .with_batch_size(256)
            .build()
            .map_err(|e| err(&p, e))?;
        for b in reader {
            let b = b.map_err(|e| err(&p, e))?;
            let epi = i64_col(&b, "episode_index", &p)?;
            let fi = i64_col(&b, "frame_index", &p)?;
            let ti = i64_col(&b, "task_index", &p)?;
            let state = b.column_by_name("observation.state");
            let action = b.column_by_name("action");
            for r in 0..b.num_rows() {
                if current.as_ref().is_none_or(|c| c.ep != epi[r]) {
                    finish(current.take(), &mut report)?;
                    bar.inc(1);
                    let e = episodes
                        .iter()
                        .find(|m| m["episode_index"].as_i64() == Some(epi[r]));
                    let start = e
                        .and_then(|m| m.get("start_ns"))
                        .and_then(|s| s.as_i64())
                        .map(|s| s as u64)
                        .unwrap_or(1_700_000_000_000_000_000 + epi[r] as u64 * 3_600_000_000_000);
                    let path = out.join(format!("{name}_ep{:06}.mcap", epi[r]));
                    current = Some(Cur {
                        ep: epi[r],
                        w: Writer::create(&path)?,
                        path,
                        start,
                        task: tasks.get(&ti[r]).cloned().unwrap_or_default(),
                    });
                }
                let Cur { w, start, .. } = current.as_mut().expect("set");
                let t = *start + grid_offset_ns(fi[r].max(0) as u64, fps);
                let header = Header {
                    stamp: Time::from_nanos(t),
                    frame_id: String::new(),
                };
                if let Some(c) = state {
                    let v = row_f64(c.as_ref(), r)
                        .ok_or_else(|| err(&p, "observation.state is not a float vector"))?;
                    w.write("/joint_states", t, &joint_state(&header, &state_names, v))?;
                }
                if let Some(c) = action {
                    let v = row_f64(c.as_ref(), r)
                        .ok_or_else(|| err(&p, "action is not a float vector"))?;
                    w.write(
                        "/joint_commands",
                        t,
                        &joint_state(&header, &action_names, v),
                    )?;
                }
                for (key, dtype, _, _, depth) in &cams {
                    if dtype != "image" {
                        continue;
                    }
                    let c = b
                        .column_by_name(key)
                        .ok_or_else(|| err(&p, format!("no column {key}")))?;
                    let bytes = image_bytes(c.as_ref(), r)
                        .ok_or_else(|| err(&p, format!("{key} row {r} has no image bytes")))?;
                    if depth.is_some() {
                        let d = decode_depth_image(&bytes).map_err(|e| {
                            err(
                                &p,
                                format!("{key}, episode {} frame {}: {e}", epi[r], fi[r]),
                            )
                        })?;
                        w.write(
                            &cam_topic(key, true),
                            t,
                            &depth_image(t, key, d.width, d.height, &d.mm),
                        )?;
                        continue;
                    }
                    let rgb = decode_compressed(&bytes).map_err(|e| {
                        err(
                            &p,
                            format!(
                                "{key}, episode {} frame {}: {e} (PNG and JPEG images are imported)",
                                epi[r], fi[r]
                            ),
                        )
                    })?;
                    w.write(
                        &cam_topic(key, false),
                        t,
                        &rgb_image(t, key, rgb.width, rgb.height, rgb.pixels),
                    )?;
                }
                report.frames += 1;
            }
        }
    }
    finish(current.take(), &mut report)?;
    bar.finish_and_clear();
    Ok(report)
}

struct Cur {
    ep: i64,
    w: Writer,
    path: PathBuf,
    start: u64,
    task: String,
}

fn joint_state(header: &Header, names: &[String], v: Vec<f64>) -> JointState {
    let names = if names.len() == v.len() {
        names.to_vec()
    } else {
        (0..v.len()).map(|i| format!("joint_{i}")).collect()
    };
    JointState {
        header: header.clone(),
        name: names,
        position: v,
        velocity: Vec::new(),
        effort: Vec::new(),
    }
}

/// A depth feature's quantizer (lerobot 0.6's `video.depth_*` keys, its defaults for those
/// missing), or `None` for an RGB camera.
fn depth_quant(f: &serde_json::Value) -> Option<DepthQuant> {
    let info = &f["info"];
    let flag = |k: &str| info[k].as_bool() == Some(true);
    let depth = flag("is_depth_map")
        || flag("video.is_depth_map")
        || f["video_info"]["video.is_depth_map"].as_bool() == Some(true);
    if !depth {
        return None;
    }
    let d = DepthQuant::default();
    let num = |k: &str, v: f64| info[k].as_f64().unwrap_or(v);
    Some(DepthQuant {
        min_m: num("video.depth_min", d.min_m),
        max_m: num("video.depth_max", d.max_m),
        shift_m: num("video.shift", d.shift_m),
        use_log: info["video.use_log"].as_bool().unwrap_or(d.use_log),
    })
}

/// A 16UC1 (millimetres) depth image.
fn depth_image(t: u64, key: &str, width: u32, height: u32, mm: &[u16]) -> Image {
    let data = mm.iter().flat_map(|v| v.to_le_bytes()).collect();
    image(t, key, width, height, "16UC1", 2, data)
}

fn rgb_image(t: u64, key: &str, width: u32, height: u32, data: Vec<u8>) -> Image {
    image(t, key, width, height, "rgb8", 3, data)
}

/// A tightly packed, little-endian `Image` stamped `t`, its frame the feature key.
fn image(
    t: u64,
    key: &str,
    width: u32,
    height: u32,
    encoding: &str,
    bytes_per_pixel: u32,
    data: Vec<u8>,
) -> Image {
    Image {
        header: Header {
            stamp: Time::from_nanos(t),
            frame_id: key.to_string(),
        },
        height,
        width,
        encoding: encoding.into(),
        is_bigendian: 0,
        step: width * bytes_per_pixel,
        data,
    }
}

//! Recorder throughput against the machine it runs on, measured side by side in one run.
//!
//! 1. The media: sequential write bandwidth of the disk (the target dir, or
//!    `DEMOTAPE_BENCH_DIR`) and of tmpfs (`/dev/shm`), `dd … conv=fdatasync`-style: 8 MiB
//!    blocks, then `fdatasync`, timed together.
//! 2. The message stream: humanoid-ref (3 RGB + 2 depth 640×480 at 30 Hz, 32-joint states at
//!    500 Hz, 2 wrenches at 1 kHz, 10 tactile pads at 200 Hz) with the simulator's camera
//!    noise (σ = 3 levels), replayed from a pool of pre-rendered frames by a source that
//!    paces each stream at `scale` × its rate, through the real pipeline: `Source` → capture
//!    queue → writer thread (sync, CDR, chunks per stream compressed on a pool by the default
//!    policy, flush every 100 ms, fdatasync every 1 s).
//! 3. The bare `mcap` crate writer on the same messages (pre-encoded, same chunk size and
//!    lz4), for the CPU ratio.
//! 4. Capacity: the same stream unpaced into a discarding sink (`/dev/null`), as fast as the
//!    pipeline goes.
//! 5. The live copy's cost: capacity again, and humanoid-ref ×1 on tmpfs, with the live copy
//!    ([`recorder::live`], defaults: 5 Hz images at stride 2, 30 Hz signals) published to a
//!    real Zenoh subscriber in the same process, next to the same runs without it.
//!
//! Figures: sustained MB/s and messages/s, drops, writer-thread CPU seconds per GB, peak RSS
//! of the process during the run (it includes the ~60 MB frame pool), the medium's bandwidth
//! and the ratios. `DEMOTAPE_BENCH_SECS` (default 6) sets the length of each paced run.
//! The last line is one JSON object (shared/design/cli.md).

use hal::sim::{SimConfig, SimEpisode, now_ns};
use hal::source::SourceFuture;
use hal::{Payload, Sample, SampleSink, Source, SourceReport, StreamSpec};
use recorder::config::{Compression, CompressionPolicy};
use recorder::writer::{EpisodeMeta, WriterOptions};
use recorder::{QueueLimits, record_episode};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const POOL: usize = 6;

struct Pool {
    streams: Vec<StreamSpec>,
    payloads: Vec<Vec<Payload>>,
}

fn build_pool() -> Pool {
    let cfg = SimConfig::default();
    let mut ep = SimEpisode::new(&cfg, 0, 10.0, now_ns());
    let streams = ep.streams().to_vec();
    let mut payloads: Vec<Vec<Payload>> = vec![Vec::new(); streams.len()];
    let mut out = Vec::new();
    while payloads.iter().any(|p| p.len() < POOL) {
        out.clear();
        if !ep.next_samples(&mut out) {
            break;
        }
        for s in out.drain(..) {
            if payloads[s.stream].len() < POOL {
                payloads[s.stream].push(s.payload);
            }
        }
    }
    Pool { streams, payloads }
}

/// rosbag2's automotive benchmark load (`automotive.yaml`): six cameras of 3.75 MB raw
/// frames (1250 x 1000 rgb8) at 24 Hz, about 540 MB/s. Frames are a smooth scene plus sensor
/// noise (σ ≈ 3 levels, as the simulator's cameras), so lz4 sees what a real camera gives it.
fn automotive_pool() -> Pool {
    let (w, h) = (1250u32, 1000u32);
    let mut streams = Vec::new();
    let mut payloads = Vec::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for cam in 0..6 {
        streams.push(StreamSpec {
            topic: format!("/camera/auto_{cam}/image_raw"),
            modality: hal::Modality::Rgb,
            device: format!("camera_auto_{cam}"),
            rate_hz: 24.0,
            nominal_bytes: (w * h * 3) as usize,
            ros_type: None,
        });
        let mut frames = Vec::new();
        for _ in 0..POOL {
            let mut data = Vec::with_capacity((w * h * 3) as usize);
            for yy in 0..h {
                for xx in 0..w {
                    for c in 0..3u32 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        // sum of four uniform draws: roughly normal, sd ~ 3
                        let n =
                            ((x & 0xF) + ((x >> 4) & 0xF) + ((x >> 8) & 0xF) + ((x >> 12) & 0xF))
                                as i32
                                - 30;
                        let base = ((xx * 180 / w + yy * 60 / h + c * 30 + cam * 10) % 256) as i32;
                        data.push((base + n / 2).clamp(0, 255) as u8);
                    }
                }
            }
            frames.push(Payload::Image(hal::msgs::Image {
                header: Default::default(),
                height: h,
                width: w,
                encoding: "rgb8".into(),
                is_bigendian: 0,
                step: w * 3,
                data,
            }));
        }
        payloads.push(frames);
    }
    Pool { streams, payloads }
}

/// Replays the pool at `scale` × the nominal rates (paced), or as fast as it can for
/// `total_msgs` messages (unpaced).
struct Replay {
    pool: Arc<Pool>,
    scale: f64,
    duration: Duration,
    unpaced_msgs: Option<u64>,
}

impl Source for Replay {
    fn name(&self) -> &str {
        "replay"
    }
    fn streams(&self) -> Vec<StreamSpec> {
        self.pool.streams.clone()
    }
    fn run(self: Box<Self>, sink: Arc<dyn SampleSink>, stop: CancellationToken) -> SourceFuture {
        Box::pin(async move {
            let h = tokio::task::spawn_blocking(move || {
                let pool = &self.pool;
                let n = pool.streams.len();
                let period: Vec<f64> = pool
                    .streams
                    .iter()
                    .map(|s| 1.0 / (s.rate_hz * self.scale))
                    .collect();
                let mut next = vec![0.0f64; n];
                let mut seq = vec![0u64; n];
                let mut produced = vec![0u64; n];
                let mut refused = vec![0u64; n];
                let start = Instant::now();
                let t0 = now_ns();
                let mut total = 0u64;
                loop {
                    if stop.is_cancelled() {
                        break;
                    }
                    // the stream due first
                    let (i, due) = next
                        .iter()
                        .copied()
                        .enumerate()
                        .min_by(|a, b| a.1.total_cmp(&b.1))
                        .expect("streams");
                    match self.unpaced_msgs {
                        Some(limit) if total >= limit => break,
                        Some(_) => {}
                        None => {
                            if due >= self.duration.as_secs_f64() {
                                break;
                            }
                            let wait = due - start.elapsed().as_secs_f64();
                            if wait > 0.0005 {
                                std::thread::sleep(Duration::from_secs_f64(wait));
                            }
                        }
                    }
                    let host = t0 + (due * 1e9) as u64;
                    let k = seq[i] as usize % POOL;
                    // a driver receives into a fresh buffer: one copy per message
                    let payload = pool.payloads[i][k].clone();
                    let s = Sample {
                        stream: i,
                        device_stamp_us: host / 1000,
                        transmit_stamp_us: None,
                        host_receive_ns: if self.unpaced_msgs.is_some() {
                            now_ns()
                        } else {
                            host
                        },
                        sequence: seq[i],
                        boot_id: 1,
                        payload,
                    };
                    produced[i] += 1;
                    if !sink.push(s) {
                        refused[i] += 1;
                    }
                    seq[i] += 1;
                    next[i] += period[i];
                    total += 1;
                }
                SourceReport { produced, refused }
            });
            Ok(h.await.expect("replay thread"))
        })
    }
}

/// CPU time (s) of this process's threads called `name` (summed), from /proc.
fn thread_cpu_s(name: &str) -> f64 {
    let tick = 100.0; // USER_HZ on Linux
    let mut total = 0.0;
    if let Ok(d) = std::fs::read_dir("/proc/self/task") {
        for t in d.flatten() {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            // a name ending in '-' is a prefix (a pool of numbered threads)
            let hit = match name.strip_suffix('-') {
                Some(_) => comm.trim().starts_with(name),
                None => comm.trim() == name,
            };
            if !hit {
                continue;
            }
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            // fields after the ")" : state(3) ... utime(14) stime(15)
            if let Some(rest) = stat.rsplit(')').next() {
                let f: Vec<&str> = rest.split_whitespace().collect();
                let u: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
                let s: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
                total += (u + s) / tick;
            }
        }
    }
    total
}

fn process_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let u: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let s: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    (u + s) / 100.0
}

/// Reset the kernel's peak-RSS mark (Linux ≥ 4.0), so each run reports its own peak.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A `kB` field of /proc/self/status, in MB.
fn status_mb(field: &str) -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn current_rss_mb() -> f64 {
    status_mb("VmRSS:")
}

fn peak_rss_mb() -> f64 {
    status_mb("VmHWM:")
}

/// dd-style sequential write bandwidth with fdatasync (MB/s, median of 3).
fn medium_bandwidth(dir: &Path, mb: usize) -> f64 {
    let block = vec![0x5au8; 8 << 20];
    let mut v = Vec::new();
    for i in 0..3 {
        let p = dir.join(format!("demotape-dd-{}-{i}", std::process::id()));
        let t = Instant::now();
        let mut f = std::fs::File::create(&p).expect("bench file");
        let mut written = 0;
        while written < mb << 20 {
            f.write_all(&block).expect("write");
            written += block.len();
        }
        f.sync_data().expect("fdatasync");
        v.push(written as f64 / 1e6 / t.elapsed().as_secs_f64());
        drop(f);
        let _ = std::fs::remove_file(&p);
    }
    v.sort_by(f64::total_cmp);
    v[1]
}

/// Remove a run's output file, if it is one. Capacity runs write to `/dev/null`: as root,
/// `remove_file("/dev/null")` succeeds, and the next run's writer then creates a regular file
/// there (on devtmpfs, in RAM) instead of discarding, which both falsified the capacity figures
/// and broke the machine's `/dev/null` for every other program.
fn remove_output(path: &Path) {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file()) {
        let _ = std::fs::remove_file(path);
    }
}

#[derive(Clone)]
struct RunResult {
    mb_per_s: f64,
    msgs_per_s: f64,
    drops: u64,
    cpu_s_per_gb: f64,
    process_cpu_s_per_gb: f64,
    peak_rss_mb: f64,
    /// peak minus the process's RSS when the run began (frame pool, allocator caches)
    rss_growth_mb: f64,
    bytes: u64,
    msgs: u64,
    writer_cpu_s: f64,
    /// The longest a sample waited in the capture queue.
    peak_queue_age_ms: f64,
    /// The 99th percentile of the samples' waits.
    queue_age_p99_ms: f64,
    /// Message bytes / bytes their chunks take in the file (the streams' own).
    compression_ratio: f64,
}

#[allow(clippy::too_many_arguments)] // a bench helper: every knob is one of the table's columns
fn run_pipeline(
    rt: &tokio::runtime::Runtime,
    pool: &Arc<Pool>,
    path: &Path,
    scale: f64,
    duration: Duration,
    unpaced_msgs: Option<u64>,
    queue_bytes: usize,
    compression: CompressionPolicy,
    live: Option<&recorder::live::LiveHub>,
) -> RunResult {
    remove_output(path);
    let opts = WriterOptions {
        flush_interval: Duration::from_millis(100),
        chunk_size: 8 << 20,
        compression,
        fsync_interval: Some(Duration::from_secs(1)),
        table: None,
        triggers: Vec::new(),
        ptp: Vec::new(),
    };
    let meta = EpisodeMeta {
        robot_id: "bench".into(),
        episode_id: "bench".into(),
        start_ns: now_ns(),
        ..Default::default()
    };
    let src = Replay {
        pool: pool.clone(),
        scale,
        duration,
        unpaced_msgs,
    };
    reset_peak_rss();
    let rss0 = current_rss_mb();
    let cpu0 = process_cpu_s();
    let w0 = writer_cpu_s();
    let t = Instant::now();
    // sample the writer thread's CPU just before it exits: poll while the run goes
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d2 = done.clone();
    let poll = std::thread::spawn(move || {
        let mut last = 0.0f64;
        while !d2.load(std::sync::atomic::Ordering::Relaxed) {
            last = last.max(writer_cpu_s());
            std::thread::sleep(Duration::from_millis(20));
        }
        last
    });
    let summary = record_episode(
        rt,
        vec![Box::new(src)],
        path,
        &opts,
        &meta,
        QueueLimits {
            // the recorder's default (a bounded channel preallocates its slots)
            messages: 65536,
            bytes: queue_bytes,
        },
        CancellationToken::new(),
        live,
    )
    .expect("record");
    let wall = t.elapsed().as_secs_f64();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let writer_cpu = poll.join().unwrap() - w0;
    let cpu = process_cpu_s() - cpu0;
    let bytes: u64 = summary.streams.iter().map(|s| s.bytes).sum();
    let msgs = summary.total_messages();
    let gb = bytes as f64 / 1e9;
    remove_output(path);
    RunResult {
        mb_per_s: bytes as f64 / 1e6 / wall,
        msgs_per_s: msgs as f64 / wall,
        drops: summary.total_drops(),
        cpu_s_per_gb: writer_cpu / gb,
        process_cpu_s_per_gb: cpu / gb,
        peak_rss_mb: peak_rss_mb(),
        rss_growth_mb: peak_rss_mb() - rss0,
        bytes,
        msgs,
        writer_cpu_s: writer_cpu,
        peak_queue_age_ms: summary.peak_queue_age_ms,
        queue_age_p99_ms: summary.queue_age_p99_ms,
        compression_ratio: bytes as f64
            / summary
                .streams
                .iter()
                .map(|s| s.stored_bytes)
                .sum::<u64>()
                .max(1) as f64,
    }
}

/// A spinning process that keeps one core busy until dropped ("the other core busy").
struct Hog(std::process::Child);

impl Hog {
    fn start() -> Hog {
        Hog(std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .expect("spawn a busy loop"))
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn policy_name(p: &CompressionPolicy) -> &'static str {
    match p.default {
        Compression::Auto => "default",
        Compression::Lz4 => "lz4",
        Compression::Zstd => "zstd",
        Compression::None => "none",
    }
}

/// CPU seconds of the writer thread and of the compression threads it feeds.
fn writer_cpu_s() -> f64 {
    thread_cpu_s("mcap-writer") + thread_cpu_s("compress-")
}

/// The bare mcap crate writer on the same messages (encoded beforehand), same settings.
/// Returns (CPU seconds of the writing thread, bytes).
fn bare_mcap(pool: &Pool, path: &Path, msgs: u64) -> (f64, u64) {
    remove_output(path);
    let encoded: Vec<Vec<Vec<u8>>> = pool
        .payloads
        .iter()
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    let mut b = Vec::new();
                    p.encode_into(&mut b).expect("encode");
                    b
                })
                .collect()
        })
        .collect();
    let period: Vec<f64> = pool.streams.iter().map(|s| 1.0 / s.rate_hz).collect();
    let path = path.to_path_buf();
    let streams = pool.streams.clone();
    let h = std::thread::Builder::new()
        .name("bare-mcap".into())
        .spawn(move || {
            let f = std::fs::File::options()
                .write(true)
                .create(true)
                .truncate(path != Path::new("/dev/null"))
                .open(&path)
                .expect("open");
            let mut w = mcap::WriteOptions::new()
                .profile("ros2")
                .compression(Some(mcap::Compression::Lz4))
                .chunk_size(Some(8 << 20))
                .create(std::io::BufWriter::with_capacity(1 << 20, f))
                .expect("mcap");
            let mut ids = Vec::new();
            for s in &streams {
                let sid = w
                    .add_schema(s.type_name(), "ros2msg", s.schema_text().as_bytes())
                    .unwrap();
                ids.push(
                    w.add_channel(sid, &s.topic, "cdr", &Default::default())
                        .unwrap(),
                );
            }
            let t0 = thread_cpu_s("bare-mcap");
            let mut next = vec![0.0f64; streams.len()];
            let mut seq = vec![0u32; streams.len()];
            let mut bytes = 0u64;
            let mut last_flush = 0.0;
            for _ in 0..msgs {
                let (i, due) = next
                    .iter()
                    .copied()
                    .enumerate()
                    .min_by(|a, b| a.1.total_cmp(&b.1))
                    .unwrap();
                let b = &encoded[i][seq[i] as usize % POOL];
                let t = (due * 1e9) as u64;
                w.write_to_known_channel(
                    &mcap::records::MessageHeader {
                        channel_id: ids[i],
                        sequence: seq[i],
                        log_time: t,
                        publish_time: t,
                    },
                    b,
                )
                .unwrap();
                bytes += b.len() as u64;
                seq[i] += 1;
                next[i] += period[i];
                // the same 100 ms chunk flushes the recorder does
                if due - last_flush >= 0.1 {
                    w.flush().unwrap();
                    last_flush = due;
                }
            }
            w.finish().unwrap();
            (thread_cpu_s("bare-mcap") - t0, bytes)
        })
        .unwrap();
    h.join().unwrap()
}

fn main() {
    let secs: f64 = std::env::var("DEMOTAPE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6.0);
    let dd_mb: usize = std::env::var("DEMOTAPE_BENCH_DD_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024);
    let disk_dir = std::env::var_os("DEMOTAPE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("target"))
                .join("bench-throughput")
        });
    std::fs::create_dir_all(&disk_dir).expect("bench dir");
    let tmpfs = PathBuf::from("/dev/shm");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    eprintln!("measuring media ({dd_mb} MB, fdatasync, median of 3) ...");
    let disk_bw = medium_bandwidth(&disk_dir, dd_mb);
    let tmpfs_bw = medium_bandwidth(&tmpfs, dd_mb.min(512));
    eprintln!(
        "disk {disk_bw:.0} MB/s ({}), tmpfs {tmpfs_bw:.0} MB/s",
        disk_dir.display()
    );

    eprintln!("rendering the frame pool ...");
    let pool = Arc::new(build_pool());
    let nominal: f64 = pool
        .streams
        .iter()
        .zip(&pool.payloads)
        .map(|(s, p)| {
            let mut b = Vec::new();
            p[0].encode_into(&mut b).unwrap();
            s.rate_hz * b.len() as f64
        })
        .sum::<f64>()
        / 1e6;
    eprintln!("humanoid-ref: {nominal:.1} MB/s at 1x");

    let dur = Duration::from_secs_f64(secs);
    let queue = 512 << 20;
    let mut runs = Vec::new();
    let mut table = Vec::new();
    // the scale that asks for 90 % of each medium's bandwidth
    let at90 = |bw: f64| (0.9 * bw / nominal * 100.0).round() / 100.0;
    // (sink, path, scale, medium bandwidth, policy, the other core busy)
    let default = CompressionPolicy::default;
    let lz4 = || CompressionPolicy::all(Compression::Lz4);
    let disk = disk_dir.join("bench.mcap");
    let shm = tmpfs.join("demotape-bench.mcap");
    let mut plan: Vec<(&str, PathBuf, f64, f64, CompressionPolicy, bool)> = Vec::new();
    for scale in [1.0, 2.0, 4.0] {
        plan.push(("disk", disk.clone(), scale, disk_bw, default(), false));
    }
    plan.push((
        "disk",
        disk.clone(),
        at90(disk_bw),
        disk_bw,
        default(),
        false,
    ));
    plan.push(("disk", disk.clone(), 1.0, disk_bw, default(), true));
    // lz4 for every stream: the codec the bare mcap writer uses, for the CPU ratio
    plan.push(("disk", disk.clone(), 1.0, disk_bw, lz4(), false));
    for scale in [1.0, 2.0] {
        plan.push(("tmpfs", shm.clone(), scale, tmpfs_bw, default(), false));
    }
    plan.push((
        "tmpfs",
        shm.clone(),
        at90(tmpfs_bw),
        tmpfs_bw,
        default(),
        false,
    ));
    let mut bare_cache: std::collections::BTreeMap<String, (f64, u64)> = Default::default();
    for (sink, path, scale, bw, policy, busy) in &plan {
        let name = policy_name(policy);
        eprintln!(
            "humanoid-ref x{scale} -> {sink} ({name}{}) for {secs} s ...",
            if *busy { ", other core busy" } else { "" }
        );
        let hog = busy.then(Hog::start);
        let r = run_pipeline(
            &rt,
            &pool,
            path,
            *scale,
            dur,
            None,
            queue,
            policy.clone(),
            None,
        );
        drop(hog);
        // bare writer on the same number of messages, same medium
        let key = format!("{sink}-{}", r.msgs);
        let (bare_cpu, bare_bytes) = *bare_cache
            .entry(key)
            .or_insert_with(|| bare_mcap(&pool, path, r.msgs));
        remove_output(path);
        let ratio_cpu = (r.writer_cpu_s / r.bytes as f64) / (bare_cpu / bare_bytes as f64);
        table.push(format!(
            "{:<6} x{:<5.2} {:<8} {:>9.1} {:>9.0} {:>7} {:>9.2} {:>9.2} {:>8.0} {:>9.0} {:>7.2} {:>8.2} {:>7.1} {:>6.2}",
            format!("{sink}{}", if *busy { "*" } else { "" }),
            scale,
            name,
            r.mb_per_s,
            r.msgs_per_s,
            r.drops,
            r.cpu_s_per_gb,
            r.process_cpu_s_per_gb,
            r.peak_rss_mb,
            bw,
            r.mb_per_s / bw,
            ratio_cpu,
            r.queue_age_p99_ms,
            r.compression_ratio
        ));
        // comparable with the bare writer only where both compress every stream with lz4
        let comparable = policy.default == Compression::Lz4 && policy.topics.is_empty();
        runs.push(serde_json::json!({
            "load": "humanoid-ref", "scale": scale, "sink": sink, "policy": name,
            "other_core_busy": busy,
            "queue_age_p99_ms": r.queue_age_p99_ms, "compression_ratio": r.compression_ratio,
            "ratio_cpu_to_bare_mcap_comparable": comparable,
            "mb_per_s": r.mb_per_s, "msgs_per_s": r.msgs_per_s, "drops": r.drops,
            "cpu_s_per_gb": r.cpu_s_per_gb, "process_cpu_s_per_gb": r.process_cpu_s_per_gb,
            "peak_rss_mb": r.peak_rss_mb, "rss_growth_mb": r.rss_growth_mb, "medium_mb_per_s": bw,
            "ratio_to_medium": r.mb_per_s / bw, "ratio_cpu_to_bare_mcap": ratio_cpu,
            "bare_mcap_cpu_s_per_gb": bare_cpu / (bare_bytes as f64 / 1e9),
            "peak_queue_age_ms": r.peak_queue_age_ms,
        }));
    }
    // rosbag2's automotive load at scale 1, to each medium
    eprintln!("generating the automotive frame pool (6 x 3.75 MB at 24 Hz) ...");
    let auto = Arc::new(automotive_pool());
    for (sink, path, bw, busy) in [
        ("disk", disk.clone(), disk_bw, false),
        ("tmpfs", shm.clone(), tmpfs_bw, false),
        ("disk", disk.clone(), disk_bw, true),
    ] {
        eprintln!(
            "automotive x1 -> {sink}{} for {secs} s ...",
            if busy { " (other core busy)" } else { "" }
        );
        let hog = busy.then(Hog::start);
        let r = run_pipeline(&rt, &auto, &path, 1.0, dur, None, queue, default(), None);
        drop(hog);
        table.push(format!(
            "{:<6} auto   default  {:>9.1} {:>9.0} {:>7} {:>9.2} {:>9.2} {:>8.0} {:>9.0} {:>7.2} {:>8} {:>7.1} {:>6.2}   (peak queue age {:.0} ms)",
            format!("{sink}{}", if busy { "*" } else { "" }),
            r.mb_per_s,
            r.msgs_per_s,
            r.drops,
            r.cpu_s_per_gb,
            r.process_cpu_s_per_gb,
            r.peak_rss_mb,
            bw,
            r.mb_per_s / bw,
            "-",
            r.queue_age_p99_ms,
            r.compression_ratio,
            r.peak_queue_age_ms
        ));
        runs.push(serde_json::json!({
            "load": "automotive", "scale": 1.0, "sink": sink, "policy": "default",
            "other_core_busy": busy,
            "queue_age_p99_ms": r.queue_age_p99_ms, "compression_ratio": r.compression_ratio,
            "mb_per_s": r.mb_per_s, "msgs_per_s": r.msgs_per_s, "drops": r.drops,
            "cpu_s_per_gb": r.cpu_s_per_gb, "process_cpu_s_per_gb": r.process_cpu_s_per_gb,
            "peak_rss_mb": r.peak_rss_mb, "medium_mb_per_s": bw,
            "ratio_to_medium": r.mb_per_s / bw, "peak_queue_age_ms": r.peak_queue_age_ms,
        }));
    }
    drop(auto);
    // capacity: ~12 s of humanoid-ref (~1.5 GB), unpaced into /dev/null
    eprintln!("capacity: unpaced into /dev/null ...");
    {
        use std::os::unix::fs::FileTypeExt;
        let null = std::fs::metadata("/dev/null").map(|m| m.file_type().is_char_device());
        assert!(
            matches!(null, Ok(true)),
            "/dev/null is not a character device (an older build of this bench, run as root, \
             replaced it with a file): restore it with `rm /dev/null && mknod -m 666 /dev/null c 1 3`"
        );
    }
    let msgs = 12 * 4650;
    let capacity = |c, live| {
        run_pipeline(
            &rt,
            &pool,
            Path::new("/dev/null"),
            1.0,
            dur,
            Some(msgs),
            4 << 30,
            c,
            live,
        )
    };
    let mut by_policy = serde_json::Map::new();
    let mut cap_rows = Vec::new();
    for (name, policy) in [
        ("none", CompressionPolicy::all(Compression::None)),
        ("lz4", lz4()),
        ("zstd", CompressionPolicy::all(Compression::Zstd)),
        ("default", default()),
    ] {
        eprintln!("  policy {name} ...");
        let r = capacity(policy, None);
        by_policy.insert(
            name.into(),
            serde_json::json!({
                "mb_per_s": r.mb_per_s, "drops": r.drops,
                "compression_ratio": r.compression_ratio,
                "cpu_s_per_gb": r.cpu_s_per_gb, "peak_rss_mb": r.peak_rss_mb,
                "queue_age_p99_ms": r.queue_age_p99_ms,
            }),
        );
        cap_rows.push((name, r));
    }
    eprintln!("  policy default, other core busy ...");
    let hog = Hog::start();
    let cap_busy = capacity(default(), None);
    drop(hog);
    let cap = cap_rows
        .iter()
        .find(|r| r.0 == "default")
        .unwrap()
        .1
        .clone();
    let cap_lz4 = cap_rows.iter().find(|r| r.0 == "lz4").unwrap().1.clone();

    // the live copy, watched by a real subscriber in this process
    eprintln!("live copy: capacity and x1 on tmpfs, with a subscribed viewer ...");
    use zenoh::Wait;
    let zc = hal::zenoh::SessionConfig {
        multicast_scouting: false,
        ..Default::default()
    };
    let session = zenoh::open(zc.to_zenoh().unwrap()).wait().unwrap();
    let received = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let rc = received.clone();
    let _sub = session
        .declare_subscriber("bench/bench/live/**")
        .callback(move |_| {
            rc.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })
        .wait()
        .unwrap();
    let hub = recorder::live::LiveHub::start(
        session.clone(),
        "bench",
        "bench",
        recorder::live::LiveConfig::default(),
    )
    .unwrap();
    let cap_live = capacity(default(), Some(&hub));
    let tmp = tmpfs.join("demotape-bench.mcap");
    let x1 = |live| run_pipeline(&rt, &pool, &tmp, 1.0, dur, None, queue, default(), live);
    let (x1, x1_live) = (x1(None), x1(Some(&hub)));
    let live_counters = hub.counters();
    let live_received = received.load(std::sync::atomic::Ordering::Relaxed);
    let (bare_cpu, bare_bytes) = bare_mcap(&pool, Path::new("/dev/null"), cap.msgs);
    let bare_mb_s = bare_bytes as f64 / 1e6 / bare_cpu;
    let cap_ratio_cpu =
        (cap_lz4.writer_cpu_s / cap_lz4.bytes as f64) / (bare_cpu / bare_bytes as f64);
    for (name, r) in cap_rows
        .iter()
        .chain([("default*", cap_busy.clone())].iter())
    {
        table.push(format!(
            "{:<6} {:<6} {:<8} {:>9.1} {:>9.0} {:>7} {:>9.2} {:>9.2} {:>8.0} {:>9} {:>7} {:>8} {:>7.1} {:>6.2}",
            "null",
            "max",
            name,
            r.mb_per_s,
            r.msgs_per_s,
            r.drops,
            r.cpu_s_per_gb,
            r.process_cpu_s_per_gb,
            r.peak_rss_mb,
            "-",
            "-",
            if *name == "lz4" { format!("{cap_ratio_cpu:.2}") } else { "-".into() },
            r.queue_age_p99_ms,
            r.compression_ratio
        ));
    }

    println!(
        "{:<6} {:<6} {:<8} {:>9} {:>9} {:>7} {:>9} {:>9} {:>8} {:>9} {:>7} {:>8} {:>7} {:>6}",
        "sink",
        "scale",
        "policy",
        "MB/s",
        "msgs/s",
        "drops",
        "wCPU s/GB",
        "pCPU s/GB",
        "RSS MB",
        "medium",
        "ratio",
        "cpu/bare",
        "p99 ms",
        "compr"
    );
    println!(
        "(* = the other core busy with a spinning process; CPU columns count the writer and compression threads)"
    );
    for l in &table {
        println!("{l}");
    }
    println!(
        "medium: disk {disk_bw:.0} MB/s, tmpfs {tmpfs_bw:.0} MB/s (dd-style, fdatasync); bare mcap writer (lz4) alone: {bare_mb_s:.0} MB/s per CPU-second"
    );
    println!(
        "capacity (unpaced, /dev/null): default policy {:.0} MB/s, {} drops ({:.0} MB/s with the other core busy); lz4 {:.0} MB/s (writer+compression CPU / bare mcap {:.2})",
        cap.mb_per_s, cap.drops, cap_busy.mb_per_s, cap_lz4.mb_per_s, cap_ratio_cpu
    );
    println!(
        "live copy (viewer subscribed): capacity {:.0} MB/s vs {:.0} without (ratio {:.3}); x1 tmpfs {:.1} MB/s, {} drops, process CPU {:.2} s/GB vs {:.2} without; {} copies published, {} received, {} dropped busy",
        cap_live.mb_per_s,
        cap.mb_per_s,
        cap_live.mb_per_s / cap.mb_per_s,
        x1_live.mb_per_s,
        x1_live.drops,
        x1_live.process_cpu_s_per_gb,
        x1.process_cpu_s_per_gb,
        live_counters.published,
        live_received,
        live_counters.dropped_busy
    );
    println!(
        "{}",
        serde_json::json!({
            "bench": "recorder-throughput",
            "live": {
                "capacity_mb_per_s": cap_live.mb_per_s,
                "capacity_ratio_to_without": cap_live.mb_per_s / cap.mb_per_s,
                "x1_tmpfs_drops": x1_live.drops,
                "x1_tmpfs_mb_per_s": x1_live.mb_per_s,
                "x1_tmpfs_process_cpu_s_per_gb": x1_live.process_cpu_s_per_gb,
                "x1_tmpfs_process_cpu_s_per_gb_without": x1.process_cpu_s_per_gb,
                "published": live_counters.published,
                "received": live_received,
                "dropped_busy": live_counters.dropped_busy,
            },
            "capacity_mb_per_s": cap.mb_per_s,
            "capacity_drops": cap.drops,
            "capacity_queue_age_p99_ms": cap.queue_age_p99_ms,
            "capacity_other_core_busy_mb_per_s": cap_busy.mb_per_s,
            "capacity_by_policy": by_policy,
            "capacity_lz4_ratio_cpu_to_bare_mcap": cap_ratio_cpu,
            "bare_mcap_mb_per_cpu_s": bare_mb_s,
            "disk_mb_per_s": disk_bw,
            "tmpfs_mb_per_s": tmpfs_bw,
            "nominal_mb_per_s_1x": nominal,
            "runs": runs,
        })
    );
}

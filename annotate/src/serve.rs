//! `demotape review serve DIR`: the review queue of a directory as a local web app.
//!
//! One binary, no Node at run time: the page (`annotate/web/`) is compiled in. The server
//! (axum on a small tokio runtime) answers
//! - `GET /` the page, `GET /app.js`, `GET /app.css`;
//! - `GET /api/queue` the episodes of DIR in `review list --all --order …` order, with what
//!   each needs;
//! - `GET /api/episode?id=` one episode: its automatic labels, the human history and the
//!   effective labels, gates, operator labels and recording events, the signals the annotator
//!   used (EE speed, gripper aperture, wrench magnitude, touch) on the episode's time axis,
//!   and its cameras with every frame's time;
//! - `GET /api/frame?id=&topic=&i=` frame `i` of a camera as JPEG, read on demand from the
//!   MCAP (only the chunk holding it, found by the chunk and message indexes; the last chunks
//!   read are kept for scrubbing);
//! - `POST /api/correct?id=` a correction (`review::Correction` plus `base`, the revision the
//!   reviewer saw): the same append-only history `demotape review correct` writes, under the
//!   same lock; a correction against a stale revision is refused with `409` and the other
//!   reviewers' corrections, never merged silently.
//!
//! Safe by default: it binds 127.0.0.1; an `id` is a path relative to DIR that must stay
//! inside it (no `..`, no absolute path, no symlink out); listening anywhere else needs the
//! token printed at start, in the URL (`?token=`) or the `x-demotape-token` header.

use crate::label::AnnotateConfig;
use crate::review;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

const INDEX_HTML: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const APP_CSS: &str = include_str!("../web/app.css");

/// Most points per plotted series sent to the page.
const MAX_POINTS: usize = 2000;

/// How `serve` runs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub dir: PathBuf,
    pub listen: IpAddr,
    pub port: u16,
    /// Corrections are recorded under this name unless the page sends its own.
    pub author: Option<String>,
    pub config: AnnotateConfig,
    /// Confidence below which an episode is flagged in the queue.
    pub below: f64,
    /// Open the page in the default browser once listening.
    pub open: bool,
    /// The queue's order.
    pub order: review::Order,
}

/// One camera of an episode: its frames' times and where each frame is.
struct Camera {
    topic: String,
    channel: u16,
    /// Per frame: log time and the index of its chunk in `chunks`.
    frames: Vec<(u64, usize)>,
}

struct Episode {
    mcap: PathBuf,
    chunks: Vec<mcap::records::ChunkIndex>,
    cameras: Vec<Camera>,
    /// Everything the page shows that does not change with corrections.
    fixed: serde_json::Value,
}

struct App {
    dir: PathBuf,
    token: Option<String>,
    author: Option<String>,
    config: AnnotateConfig,
    arm: Arc<hal::robot::RobotArm>,
    below: f64,
    order: review::Order,
    episodes: Mutex<HashMap<PathBuf, Arc<Episode>>>,
    /// Recently decompressed chunks, most recent last.
    chunks: Mutex<VecDeque<CachedChunk>>,
}

/// A decompressed chunk: (file, chunk offset) and its records.
type CachedChunk = ((PathBuf, u64), Arc<Vec<u8>>);

type Shared = Arc<App>;

/// An HTTP error with a message for the page.
struct Fail(StatusCode, String);

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<anyhow::Error> for Fail {
    fn from(e: anyhow::Error) -> Self {
        Fail(StatusCode::UNPROCESSABLE_ENTITY, format!("{e:#}"))
    }
}

fn random_token() -> anyhow::Result<String> {
    use std::io::Read;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Run the server until interrupted. Prints the address (with the token, if one is needed)
/// on stdout, as `serving http://...`.
pub fn serve(opts: ServeOptions) -> anyhow::Result<()> {
    let dir = std::fs::canonicalize(&opts.dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", opts.dir.display()))?;
    if !dir.is_dir() {
        anyhow::bail!("{}: not a directory", dir.display());
    }
    let token = if opts.listen.is_loopback() {
        None
    } else {
        Some(random_token()?)
    };
    let arm = Arc::new(opts.config.robot_arm()?);
    let app = Arc::new(App {
        dir,
        token,
        author: opts.author,
        config: opts.config,
        arm,
        below: opts.below,
        order: opts.order,
        episodes: Mutex::new(HashMap::new()),
        chunks: Mutex::new(VecDeque::new()),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(opts.listen, opts.port))
            .await
            .map_err(|e| anyhow::anyhow!("listening on {}:{}: {e}", opts.listen, opts.port))?;
        let addr = listener.local_addr()?;
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            addr.ip().to_string()
        };
        let url = match &app.token {
            Some(t) => format!("http://{host}:{}/?token={t}", addr.port()),
            None => format!("http://{host}:{}/", addr.port()),
        };
        println!("serving {url}");
        if opts.open
            && let Err(e) = std::process::Command::new("xdg-open").arg(&url).spawn()
        {
            tracing::warn!("--open: could not start xdg-open ({e}); open {url} yourself");
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        tracing::info!(dir = %app.dir.display(), %addr, "review server up");
        let router = Router::new()
            .route("/", get(index))
            .route(
                "/app.js",
                get(|| async { asset(APP_JS, "text/javascript") }),
            )
            .route("/app.css", get(|| async { asset(APP_CSS, "text/css") }))
            .route("/api/queue", get(queue))
            .route("/api/episode", get(episode))
            .route("/api/frame", get(frame))
            .route("/api/correct", post(correct))
            .layer(axum::middleware::from_fn_with_state(app.clone(), guard))
            .with_state(app);
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        anyhow::Ok(())
    })
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    asset(INDEX_HTML, "text/html; charset=utf-8")
}

/// Every request needs the token when one was issued.
async fn guard(
    State(app): State<Shared>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(t) = &app.token {
        let in_query = req.uri().query().is_some_and(|q| {
            q.split('&')
                .any(|kv| kv.strip_prefix("token=").is_some_and(|v| v == t))
        });
        let in_header = req
            .headers()
            .get("x-demotape-token")
            .is_some_and(|v| v.as_bytes() == t.as_bytes());
        if !in_query && !in_header {
            return Fail(
                StatusCode::UNAUTHORIZED,
                "this server needs the token it printed at start (?token=...)".into(),
            )
            .into_response();
        }
    }
    next.run(req).await
}

impl App {
    /// The sidecar an `id` names: relative to DIR, inside it, an annotation sidecar.
    fn sidecar(&self, id: &str) -> Result<PathBuf, Fail> {
        let rel = Path::new(id);
        let bad = || {
            Fail(
                StatusCode::FORBIDDEN,
                format!("{id:?} is not an episode of this directory"),
            )
        };
        if id.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(bad());
        }
        let name = rel.to_string_lossy();
        if !(name.ends_with(".annotations.json") || name.ends_with(".annotations.failed.json")) {
            return Err(bad());
        }
        let p = std::fs::canonicalize(self.dir.join(rel))
            .map_err(|e| Fail(StatusCode::NOT_FOUND, format!("{id}: {e}")))?;
        if !p.starts_with(&self.dir) {
            return Err(bad());
        }
        Ok(p)
    }

    fn id_of(&self, p: &Path) -> String {
        p.strip_prefix(&self.dir)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned()
    }

    /// The recording a sidecar labels: `<stem>.mcap` beside it, else its `source`, inside DIR.
    fn episode_file(&self, sidecar: &Path, auto: &serde_json::Value) -> Result<PathBuf, Fail> {
        let s = sidecar.to_string_lossy();
        let stem = s
            .trim_end_matches(".annotations.json")
            .trim_end_matches(".annotations.failed.json");
        let beside = PathBuf::from(format!("{stem}.mcap"));
        let candidates = [Some(beside), auto["source"].as_str().map(PathBuf::from)];
        for c in candidates.into_iter().flatten() {
            if let Ok(p) = std::fs::canonicalize(&c)
                && p.starts_with(&self.dir)
                && p.is_file()
            {
                return Ok(p);
            }
        }
        Err(Fail(
            StatusCode::NOT_FOUND,
            format!(
                "{}: its recording ({stem}.mcap) is not in this directory",
                self.id_of(sidecar)
            ),
        ))
    }

    fn load_episode(&self, sidecar: &Path) -> Result<Arc<Episode>, Fail> {
        if let Some(e) = self
            .episodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(sidecar)
        {
            return Ok(e.clone());
        }
        let auto = review::load_auto(sidecar)?;
        let mcap = self.episode_file(sidecar, &auto)?;
        let ep = Arc::new(build_episode(&mcap, &self.config, &self.arm)?);
        self.episodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sidecar.to_path_buf(), ep.clone());
        Ok(ep)
    }

    fn chunk(&self, ep: &Episode, k: usize) -> anyhow::Result<Arc<Vec<u8>>> {
        let ci = &ep.chunks[k];
        let key = (ep.mcap.clone(), ci.chunk_start_offset);
        if let Some((_, c)) = self
            .chunks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(k, _)| *k == key)
        {
            return Ok(c.clone());
        }
        let mut f = std::fs::File::open(&ep.mcap)
            .map_err(|e| anyhow::anyhow!("{}: {e}", ep.mcap.display()))?;
        let len = f.metadata()?.len();
        let plain = Arc::new(crate::read::read_chunk(
            &ep.mcap,
            &mut f,
            len,
            ci,
            &mut Vec::new(),
        )?);
        let mut cache = self.chunks.lock().unwrap_or_else(|e| e.into_inner());
        cache.push_back((key, plain.clone()));
        // a few camera chunks (8 MiB each at most): scrubbing back and forth stays in memory
        while cache.len() > 6 {
            cache.pop_front();
        }
        Ok(plain)
    }
}

/// Read what the page needs once: cameras (frame times from the message indexes), signals,
/// metadata and events.
fn build_episode(
    mcap: &Path,
    config: &AnnotateConfig,
    arm: &hal::robot::RobotArm,
) -> anyhow::Result<Episode> {
    let mut summary = crate::read::read_summary(mcap)?;
    let chunks = summary.chunk_index.clone();
    let mut cameras = Vec::new();
    for (id, ch) in &summary.sel.channels {
        let schema = summary
            .sel
            .schemas
            .get(&ch.schema_id)
            .map_or("", String::as_str);
        let is_image =
            schema == "sensor_msgs/msg/Image" || schema == "sensor_msgs/msg/CompressedImage";
        if !is_image {
            continue;
        }
        let mut frames = Vec::new();
        for (k, ci) in chunks.iter().enumerate() {
            if !ci.message_index_offsets.contains_key(id) {
                continue;
            }
            for t in crate::read::message_times(mcap, &mut summary.file, ci, *id)? {
                frames.push((t, k));
            }
        }
        frames.sort_unstable();
        cameras.push(Camera {
            topic: ch.topic.clone(),
            channel: *id,
            frames,
        });
    }
    cameras.sort_by(|a, b| a.topic.cmp(&b.topic));
    let meta = &summary.sel.metadata;
    let start_ns: u64 = meta
        .get("demotape.episode")
        .and_then(|m| m.get("start_ns"))
        .and_then(|v| v.parse().ok())
        .or_else(|| chunks.iter().map(|c| c.message_start_time).min())
        .unwrap_or(0);
    // the annotator's signals; an episode it cannot read still shows its cameras
    let signals = match crate::signals::read_signals(mcap, &config.signals, arm) {
        Ok((s, _, _)) => signals_json(&s, arm),
        Err(e) => serde_json::json!({ "error": format!("{e:#}") }),
    };
    let events = episode_events(mcap, &summary).unwrap_or_default();
    let fixed = serde_json::json!({
        "episode": mcap.file_name().map(|n| n.to_string_lossy().into_owned()),
        "start_ns": start_ns,
        "signals": signals,
        "cameras": cameras.iter().map(|c| serde_json::json!({
            "topic": c.topic,
            "t": c.frames.iter().map(|f| round3(f.0.saturating_sub(start_ns) as f64 / 1e9)).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "labels": meta.get("demotape.labels"),
        "task": meta.get("demotape.episode").and_then(|m| m.get("task")),
        "operator": meta.get("demotape.episode").and_then(|m| m.get("operator")),
        "events": events,
    });
    Ok(Episode {
        mcap: mcap.to_path_buf(),
        chunks,
        cameras,
        fixed,
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Every `step`-th point so a series has at most [`MAX_POINTS`].
fn thin<T: Copy>(v: &[T]) -> Vec<T> {
    let step = v.len().div_ceil(MAX_POINTS).max(1);
    v.iter().step_by(step).copied().collect()
}

fn signals_json(s: &crate::segment::Signals, arm: &hal::robot::RobotArm) -> serde_json::Value {
    // end-effector speed from forward kinematics, as the annotator sees it
    let pos: Vec<nalgebra::Vector3<f64>> =
        s.q.iter()
            .map(|q| arm.kin.fk(q).translation.vector)
            .collect();
    let mut speed = vec![0.0; s.t.len()];
    for i in 1..s.t.len().min(pos.len()) {
        let dt = s.t[i] - s.t[i - 1];
        if dt > 0.0 {
            speed[i] = (pos[i] - pos[i - 1]).norm() / dt;
        }
    }
    // a few samples' mean: raw differences of noisy joints are jagged
    let half = 5;
    let smooth: Vec<f64> = (0..speed.len())
        .map(|i| {
            let (a, b) = (i.saturating_sub(half), (i + half + 1).min(speed.len()));
            speed[a..b].iter().sum::<f64>() / (b - a) as f64
        })
        .collect();
    let t: Vec<f64> = s.t.iter().map(|x| round3(*x)).collect();
    let mut out = serde_json::json!({
        "t": thin(&t),
        "ee_speed": thin(&smooth),
        "aperture": thin(&s.aperture),
    });
    if let Some((wt, w)) = &s.wrench {
        let mag: Vec<f64> = w
            .iter()
            .map(|x| (x[0] * x[0] + x[1] * x[1] + x[2] * x[2]).sqrt())
            .collect();
        let wt: Vec<f64> = wt.iter().map(|x| round3(*x)).collect();
        out["wrench_t"] = serde_json::json!(thin(&wt));
        out["wrench"] = serde_json::json!(thin(&mag));
    }
    if let Some((tt, p, _)) = &s.tactile {
        let tt: Vec<f64> = tt.iter().map(|x| round3(*x)).collect();
        out["touch_t"] = serde_json::json!(thin(&tt));
        out["touch"] = serde_json::json!(thin(p));
    }
    out
}

/// The recording's events (`/demotape/events`): operator marks, drops, resets.
fn episode_events(
    mcap: &Path,
    summary: &crate::read::Summary,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let Some((&id, _)) = summary
        .sel
        .channels
        .iter()
        .find(|(_, c)| c.topic == "/demotape/events")
    else {
        return Ok(Vec::new());
    };
    let sel = crate::read::read_selected(mcap, |topic, _| topic == "/demotape/events")?;
    let mut out = Vec::new();
    for m in sel.messages.get(&id).map_or(&[][..], Vec::as_slice) {
        if let Ok(e) = hal::msgs::decode::<hal::msgs::EpisodeEvent>(&m.data) {
            out.push(serde_json::json!({
                "t_ns": m.header.log_time,
                "kind": e.kind,
                "topic": e.topic,
                "detail": e.detail,
            }));
        }
    }
    Ok(out)
}

async fn queue(State(app): State<Shared>) -> Result<Json<serde_json::Value>, Fail> {
    let a = app.clone();
    let items = tokio::task::spawn_blocking(move || {
        let mut q = review::queue(std::slice::from_ref(&a.dir), a.below, true);
        review::sort_queue(&mut q, a.order);
        q
    })
    .await
    .map_err(|e| Fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let rows: Vec<serde_json::Value> = items
        .iter()
        .map(|i| {
            serde_json::json!({
                "id": app.id_of(&i.sidecar),
                "outcome": i.outcome,
                "confidence": i.confidence,
                "failed_gates": i.failed_gates,
                "reviewed": i.reviewed,
                "why": i.why,
            })
        })
        .collect();
    Ok(Json(
        serde_json::json!({ "dir": app.dir, "episodes": rows, "author": app.author }),
    ))
}

#[derive(Deserialize)]
struct IdQuery {
    id: String,
}

/// The labels part of an episode's page: automatic, human history, effective.
fn labels_json(sidecar: &Path) -> anyhow::Result<serde_json::Value> {
    let auto = review::load_auto(sidecar)?;
    let rv = review::load_review(sidecar)?;
    let eff = review::effective(&auto, &rv)?;
    Ok(serde_json::json!({
        "auto": {
            "outcome": auto["outcome"],
            "confidence": auto["confidence"],
            "evidence": auto["evidence"],
            "gates": auto["gates"],
            "phases": auto["phases"],
            "used_signals": auto["used_signals"],
        },
        "effective": eff,
        "history": rv.history,
        "revision": rv.history.len(),
    }))
}

async fn episode(
    State(app): State<Shared>,
    Query(q): Query<IdQuery>,
) -> Result<Json<serde_json::Value>, Fail> {
    let sidecar = app.sidecar(&q.id)?;
    if sidecar.to_string_lossy().ends_with(".failed.json") {
        let doc = review::load_auto(&sidecar)?;
        return Err(Fail(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "could not be annotated: {}",
                doc["error"].as_str().unwrap_or("?")
            ),
        ));
    }
    let a = app.clone();
    let sc = sidecar.clone();
    let ep = tokio::task::spawn_blocking(move || a.load_episode(&sc))
        .await
        .map_err(|e| Fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let mut v = ep.fixed.clone();
    v["id"] = serde_json::json!(q.id);
    v["labels_layer"] = labels_json(&sidecar)?;
    Ok(Json(v))
}

#[derive(Deserialize)]
struct FrameQuery {
    id: String,
    topic: String,
    i: usize,
}

async fn frame(State(app): State<Shared>, Query(q): Query<FrameQuery>) -> Result<Response, Fail> {
    let sidecar = app.sidecar(&q.id)?;
    let a = app.clone();
    let jpeg = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, Fail> {
        let ep = a.load_episode(&sidecar)?;
        let cam = ep
            .cameras
            .iter()
            .find(|c| c.topic == q.topic)
            .ok_or_else(|| Fail(StatusCode::NOT_FOUND, format!("no camera {}", q.topic)))?;
        let &(t, k) = cam.frames.get(q.i).ok_or_else(|| {
            Fail(
                StatusCode::NOT_FOUND,
                format!(
                    "{} has {} frames, not {}",
                    q.topic,
                    cam.frames.len(),
                    q.i + 1
                ),
            )
        })?;
        let plain = a.chunk(&ep, k)?;
        let ci = &ep.chunks[k];
        for m in crate::read::chunk_messages(&ep.mcap, ci, &plain) {
            let m = m?;
            if m.channel == cam.channel && m.log_time == t {
                return to_jpeg(m.data).map_err(|e| {
                    Fail(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!("{}: {e}", q.topic),
                    )
                });
            }
        }
        Err(Fail(
            StatusCode::NOT_FOUND,
            format!("{}: frame {} is not in its chunk", q.topic, q.i),
        ))
    })
    .await
    .map_err(|e| Fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg")),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("max-age=3600"),
            ),
        ],
        jpeg,
    )
        .into_response())
}

/// A recorded camera frame as JPEG: `Image` (RGB encodings, and 16-bit depth shown as grey
/// over its own range) or `CompressedImage` (JPEG passed through, PNG re-encoded).
fn to_jpeg(cdr: &[u8]) -> Result<Vec<u8>, String> {
    use crate::lerobot::cdr::{decode_compressed, image_to_rgb};
    let rgb = match hal::msgs::decode::<hal::msgs::Image>(cdr) {
        Ok(img) if matches!(img.encoding.as_str(), "16UC1" | "mono16") => {
            let (w, h) = (img.width as usize, img.height as usize);
            let step = img.step as usize;
            if step < w * 2 || img.data.len() < step * h {
                return Err(format!("depth image {w}x{h} is short of bytes"));
            }
            let px = |x: usize, y: usize| {
                let o = y * step + 2 * x;
                u16::from_le_bytes([img.data[o], img.data[o + 1]])
            };
            let max = (0..h)
                .flat_map(|y| (0..w).map(move |x| (x, y)))
                .map(|(x, y)| px(x, y))
                .max()
                .unwrap_or(1)
                .max(1);
            let mut pixels = Vec::with_capacity(w * h * 3);
            for y in 0..h {
                for x in 0..w {
                    let g = (u32::from(px(x, y)) * 255 / u32::from(max)) as u8;
                    pixels.extend_from_slice(&[g, g, g]);
                }
            }
            crate::lerobot::cdr::Rgb {
                width: img.width,
                height: img.height,
                pixels,
            }
        }
        Ok(img) => image_to_rgb(&img)?,
        Err(_) => {
            let c = hal::msgs::decode::<hal::msgs::CompressedImage>(cdr)
                .map_err(|e| format!("neither an Image nor a CompressedImage: {e}"))?;
            if c.data.starts_with(&[0xFF, 0xD8]) {
                return Ok(c.data);
            }
            decode_compressed(&c.data)?
        }
    };
    let mut out = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80);
    image::ImageEncoder::write_image(
        enc,
        &rgb.pixels,
        rgb.width,
        rgb.height,
        image::ExtendedColorType::Rgb8,
    )
    .map_err(|e| e.to_string())?;
    Ok(out)
}

#[derive(Deserialize)]
struct CorrectBody {
    /// The revision (number of corrections) the reviewer's page showed.
    base: usize,
    #[serde(default)]
    author: String,
    #[serde(default)]
    reason: String,
    outcome: Option<String>,
    #[serde(default)]
    moves: BTreeMap<String, f64>,
    note: Option<String>,
}

async fn correct(
    State(app): State<Shared>,
    Query(q): Query<IdQuery>,
    Json(body): Json<CorrectBody>,
) -> Result<Json<serde_json::Value>, Fail> {
    let sidecar = app.sidecar(&q.id)?;
    let author = if body.author.trim().is_empty() {
        app.author.clone().unwrap_or_default()
    } else {
        body.author.clone()
    };
    if author.trim().is_empty() {
        return Err(Fail(
            StatusCode::BAD_REQUEST,
            "a correction needs an author (start the server with --author, or give one in the page)".into(),
        ));
    }
    let c = review::Correction {
        author,
        reason: body.reason,
        at_ns: 0,
        outcome: body.outcome,
        moves: body.moves,
        note: body.note,
    };
    let sc = sidecar.clone();
    let r = tokio::task::spawn_blocking(move || review::correct_at(&sc, c, Some(body.base)))
        .await
        .map_err(|e| Fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    match r {
        Ok(_) => Ok(Json(labels_json(&sidecar)?)),
        Err(review::Refused::Conflict { revision, since }) => Err(Fail(
            StatusCode::CONFLICT,
            format!(
                "someone else corrected this episode meanwhile (revision {revision}): {}; reload to see it",
                since
                    .iter()
                    .map(|c| format!(
                        "{}{}{}",
                        c.author,
                        c.outcome
                            .as_ref()
                            .map(|o| format!(" set {o}"))
                            .unwrap_or_default(),
                        if c.moves.is_empty() {
                            String::new()
                        } else {
                            format!(
                                " moved {}",
                                c.moves.keys().cloned().collect::<Vec<_>>().join(", ")
                            )
                        }
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        )),
        Err(review::Refused::Invalid(e)) => {
            Err(Fail(StatusCode::UNPROCESSABLE_ENTITY, format!("{e:#}")))
        }
    }
}

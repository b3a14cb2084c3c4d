//! ROS 2 topics over Zenoh: an embedded Zenoh session and a [`Source`] that records topics
//! published by zenoh-bridge-ros2dds or by rmw_zenoh nodes.
//!
//! Key conventions (both accepted, per topic):
//! - **bridge** (zenoh-bridge-ros2dds): key = the topic without its leading `/`, optionally
//!   under the bridge's namespace; payload = CDR with encapsulation header; no attachment.
//! - **rmw** (rmw_zenoh): key = `<domain>/<topic without leading '/'>/<pkg>::msg::dds_::<Type>_/<type hash>`,
//!   parsed from the right (the topic itself contains `/`); the attachment carries the
//!   publisher's sequence number, source timestamp (ns) and 16-byte gid, in the zenoh-ext
//!   serialization of `(i64, i64, [u8; 16])` (Jazzy and later) or the older keyed form
//!   (`"sequence_number"`, i64, `"source_timestamp"`, i64, `"source_gid"`, bytes).
//!
//! Every payload is checked with [`crate::cdr_check`] against the topic's configured type and
//! then recorded byte for byte ([`Payload::Raw`]). What cannot be recorded is counted and
//! written as an event, never a crash: malformed CDR (`malformed`, with the byte offset), a
//! type on an rmw key that is not the configured one (`wrong_type`), a publisher that goes
//! silent (`stale`, then `resumed`), sequence gaps in rmw attachments (`gap`).

use crate::cdr_check::{self, KnownType};
use crate::ros::{Layout, Registry};
use crate::sample::{Modality, Payload, RosType, Sample, StreamSpec, StreamTable};
use crate::source::{SampleSink, Source, SourceError, SourceEvent, SourceFuture, SourceReport};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio_util::sync::CancellationToken;

/// How the recorder joins the Zenoh network (`[zenoh]` in the recorder's TOML).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// `peer` (default: no router needed) or `client`.
    pub mode: String,
    /// Endpoints to connect to, e.g. `tcp/localhost:7447` (the rmw_zenoh router).
    pub connect: Vec<String>,
    /// Endpoints to listen on, e.g. `tcp/0.0.0.0:7448`.
    pub listen: Vec<String>,
    /// Find peers by UDP multicast scouting (rmw_zenoh turns it off and meets at a router).
    pub multicast_scouting: bool,
    /// A complete Zenoh JSON5 configuration (TLS/mTLS, user-password auth, access control).
    /// When set, it is loaded first and the keys above are applied on top only where they
    /// differ from their defaults.
    pub config_file: Option<PathBuf>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            mode: "peer".into(),
            connect: Vec::new(),
            listen: Vec::new(),
            multicast_scouting: true,
            config_file: None,
        }
    }
}

/// Errors opening the Zenoh session.
#[derive(Debug, thiserror::Error)]
pub enum ZenohError {
    #[error("zenoh config file {path}: {message}")]
    ConfigFile { path: PathBuf, message: String },
    #[error("zenoh config key {key}: {message}")]
    Config { key: String, message: String },
    #[error("opening the zenoh session failed: {0}")]
    Open(String),
}

impl SessionConfig {
    /// The Zenoh configuration this describes.
    pub fn to_zenoh(&self) -> Result<zenoh::Config, ZenohError> {
        let mut c = match &self.config_file {
            Some(p) => zenoh::Config::from_file(p).map_err(|e| ZenohError::ConfigFile {
                path: p.clone(),
                message: e.to_string(),
            })?,
            None => zenoh::Config::default(),
        };
        let default = SessionConfig::default();
        let mut set = |key: &str, value: String| {
            c.insert_json5(key, &value).map_err(|e| ZenohError::Config {
                key: key.into(),
                message: e.to_string(),
            })
        };
        if self.config_file.is_none() || self.mode != default.mode {
            set("mode", json(&self.mode))?;
        }
        if !self.connect.is_empty() {
            set("connect/endpoints", json(&self.connect))?;
        }
        if !self.listen.is_empty() {
            set("listen/endpoints", json(&self.listen))?;
        }
        if self.config_file.is_none() || self.multicast_scouting != default.multicast_scouting {
            set("scouting/multicast/enabled", json(&self.multicast_scouting))?;
        }
        Ok(c)
    }

    /// Open the session (needs a multi-thread tokio runtime).
    pub async fn open(&self) -> Result<zenoh::Session, ZenohError> {
        let c = self.to_zenoh()?;
        zenoh::open(c)
            .await
            .map_err(|e| ZenohError::Open(e.to_string()))
    }
}

fn json<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Which key conventions a topic is subscribed under.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KeyStyle {
    /// zenoh-bridge-ros2dds: `[namespace/]topic`.
    Bridge,
    /// rmw_zenoh: `<domain>/<topic>/<type>/<hash>`.
    Rmw,
}

/// Which time is the sample's capture time (in the publisher's clock domain).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum StampFrom {
    /// `header.stamp` (falls back to the rmw source timestamp, then receive time, when 0).
    #[default]
    Header,
    /// The host receive time (for publishers whose stamps cannot be trusted).
    Receive,
}

/// One ROS 2 topic to record (`[[zenoh.topics]]`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TopicConfig {
    /// ROS topic name, e.g. `/camera/head/image_raw`.
    pub topic: String,
    /// ROS type, e.g. `sensor_msgs/msg/Image`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Clock domain of the publisher's stamps; default: the topic's name, sanitized.
    #[serde(default)]
    pub device: Option<String>,
    /// `rgb`, `depth`, ... (default from the type: Image → rgb, unless the topic says depth).
    #[serde(default)]
    pub modality: Option<Modality>,
    /// Nominal rate (Hz), for reports and the silence watchdog.
    #[serde(default = "default_rate")]
    pub rate_hz: f64,
    #[serde(default)]
    pub stamp: StampFrom,
}

fn default_rate() -> f64 {
    30.0
}

/// A configured topic's type, resolved against the definitions.
#[derive(Clone, Debug)]
pub struct ResolvedType {
    /// `pkg/msg/Type`
    pub name: String,
    /// `pkg::msg::dds_::Type_` (rmw_zenoh keys)
    pub dds: String,
    pub layout: Arc<Layout>,
    /// One of the five types with a modality of their own.
    pub known: Option<KnownType>,
    pub ros_type: RosType,
}

impl ResolvedType {
    /// Resolve `type_name` (`pkg/msg/T` or `pkg/T`) against `reg`.
    pub fn new(reg: &Registry, type_name: &str) -> Result<Self, String> {
        let name = crate::ros::normalize_name(type_name).ok_or_else(|| {
            format!("{type_name:?} is not a ROS 2 message type name (pkg/msg/Type)")
        })?;
        let layout = reg.layout(&name).map_err(|e| match e {
            crate::ros::DefError::Unknown { ty, .. } if ty == name => format!(
                "type {name} has no definition (built in: the standard interface packages; \
                 add your packages' share/ directories to [ros] msg_paths)"
            ),
            e => e.to_string(),
        })?;
        let schema = reg.schema_text(&name).map_err(|e| e.to_string())?;
        let hash = reg.type_hash(&name).map_err(|e| e.to_string())?;
        Ok(ResolvedType {
            dds: crate::ros::to_dds_name(&name),
            known: KnownType::from_ros_name(&name),
            ros_type: RosType {
                name: name.clone(),
                schema,
                hash,
                stamped: layout.header_first,
            },
            layout,
            name,
        })
    }
}

impl TopicConfig {
    /// The topic's type, resolved (any type `reg` defines).
    pub fn resolve(&self, reg: &Registry) -> Result<ResolvedType, String> {
        ResolvedType::new(reg, &self.type_name).map_err(|e| format!("topic {}: {e}", self.topic))
    }

    /// The modality: as configured (it must fit the type), else from the type.
    pub fn modality(&self, ty: &ResolvedType) -> Result<Modality, String> {
        let fits = |m: Modality| match m {
            Modality::Other => true,
            Modality::Rgb | Modality::Depth => ty.known == Some(KnownType::Image),
            Modality::CompressedRgb => ty.known == Some(KnownType::CompressedImage),
            Modality::JointState => ty.known == Some(KnownType::JointState),
            Modality::Wrench => ty.known == Some(KnownType::WrenchStamped),
            Modality::Tactile => ty.known == Some(KnownType::TactileArray),
            // trigger pulses come from serial trigger boards; a ROS topic of TimeReference
            // is recorded as any other type
            Modality::Trigger => false,
        };
        if let Some(m) = self.modality {
            return if fits(m) {
                Ok(m)
            } else {
                Err(format!(
                    "topic {}: modality {m:?} does not fit type {} (leave it out for any type)",
                    self.topic, ty.name
                ))
            };
        }
        Ok(match ty.known {
            Some(KnownType::Image) if self.topic.contains("depth") => Modality::Depth,
            Some(KnownType::Image) => Modality::Rgb,
            Some(KnownType::CompressedImage) => Modality::CompressedRgb,
            Some(KnownType::JointState) => Modality::JointState,
            Some(KnownType::WrenchStamped) => Modality::Wrench,
            Some(KnownType::TactileArray) => Modality::Tactile,
            None => Modality::Other,
        })
    }

    pub fn device(&self) -> String {
        self.device.clone().unwrap_or_else(|| {
            let d: String = self
                .topic
                .trim_start_matches('/')
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            if d.is_empty() { "topic".into() } else { d }
        })
    }
}

/// The topics to record and how to find them (`[zenoh]` minus the session keys).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TopicsConfig {
    /// ROS domain id used in rmw_zenoh keys.
    pub domain_id: u32,
    /// Namespace zenoh-bridge-ros2dds was started with (`-n`), without slashes; "" if none.
    pub bridge_namespace: String,
    /// Key conventions to subscribe under.
    pub key_styles: Vec<KeyStyle>,
    /// A topic silent for longer than this (and 5 periods) gets a `stale` event.
    pub stale_after_ms: u64,
    /// Directories holding `<pkg>/msg/<Type>.msg` files (an installed workspace's `share/`)
    /// for types beyond the built-in standard packages.
    pub msg_paths: Vec<PathBuf>,
    /// Record every topic ROS 2 nodes announce (rmw_zenoh and zenoh-bridge-ros2dds liveliness
    /// tokens), filtered by `include` / `exclude`, besides the listed `topics`.
    pub discover: bool,
    /// With `discover`: record only topics whose name matches one of these regexes (none =
    /// all).
    pub include: Vec<String>,
    /// With `discover`: never record topics whose name matches one of these regexes.
    pub exclude: Vec<String>,
    pub topics: Vec<TopicConfig>,
}

impl Default for TopicsConfig {
    fn default() -> Self {
        TopicsConfig {
            domain_id: 0,
            bridge_namespace: String::new(),
            key_styles: vec![KeyStyle::Bridge, KeyStyle::Rmw],
            stale_after_ms: 1000,
            msg_paths: Vec::new(),
            discover: false,
            include: Vec::new(),
            exclude: Vec::new(),
            topics: Vec::new(),
        }
    }
}

impl TopicsConfig {
    /// The built-in definitions plus those under `msg_paths`.
    pub fn registry(&self) -> Result<Registry, String> {
        let mut r = Registry::builtin().clone();
        for d in &self.msg_paths {
            if !d.is_dir() {
                return Err(format!("ros.msg_paths: {} is not a directory", d.display()));
            }
            let n = r.load_dir(d).map_err(|e| format!("ros.msg_paths: {e}"))?;
            tracing::info!(dir = %d.display(), types = n, "message definitions loaded");
        }
        Ok(r)
    }

    /// The `include` / `exclude` regexes, compiled.
    pub fn filters(&self) -> Result<(Vec<regex::Regex>, Vec<regex::Regex>), String> {
        let compile = |key: &str, v: &[String]| {
            v.iter()
                .map(|p| regex::Regex::new(p).map_err(|e| format!("ros.{key} {p:?}: {e}")))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok((
            compile("include", &self.include)?,
            compile("exclude", &self.exclude)?,
        ))
    }

    pub fn validate(&self) -> Result<(), String> {
        self.resolve_all(&self.registry()?).map(|_| ())
    }

    /// Check the config against `reg` and resolve each topic's type and modality (in the
    /// order of `topics`).
    pub fn resolve_all(&self, reg: &Registry) -> Result<Vec<(ResolvedType, Modality)>, String> {
        self.filters()?;
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::with_capacity(self.topics.len());
        for t in &self.topics {
            if !t.topic.starts_with('/') || t.topic.len() < 2 || t.topic.ends_with('/') {
                return Err(format!(
                    "zenoh topic {:?} must be a full ROS name like /camera/image_raw",
                    t.topic
                ));
            }
            if t.topic.contains(['*', '$', '?', '#']) {
                return Err(format!(
                    "zenoh topic {:?}: wildcards are not allowed",
                    t.topic
                ));
            }
            if !seen.insert(&t.topic) {
                return Err(format!("zenoh topic {:?} is listed twice", t.topic));
            }
            let ty = t.resolve(reg)?;
            let modality = t.modality(&ty)?;
            if !(t.rate_hz > 0.0 && t.rate_hz <= 100_000.0) {
                return Err(format!(
                    "zenoh topic {}: rate_hz must be in (0, 100000]",
                    t.topic
                ));
            }
            out.push((ty, modality));
        }
        if self.key_styles.is_empty() && (!self.topics.is_empty() || self.discover) {
            return Err("zenoh.key_styles must name at least one of bridge, rmw".into());
        }
        Ok(out)
    }

    /// The Zenoh key expression a topic is subscribed under, in one style.
    pub fn key_expr(&self, topic: &str, style: KeyStyle) -> String {
        let t = topic.trim_start_matches('/');
        match style {
            KeyStyle::Bridge if self.bridge_namespace.is_empty() => t.to_string(),
            KeyStyle::Bridge => format!("{}/{t}", self.bridge_namespace.trim_matches('/')),
            KeyStyle::Rmw => format!("{}/{t}/*/*", self.domain_id),
        }
    }
}

/// The fields of an rmw_zenoh attachment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RmwAttachment {
    pub sequence: i64,
    pub source_timestamp_ns: i64,
    pub gid: [u8; 16],
}

/// Parse an rmw_zenoh attachment (current tuple form or the older keyed form).
pub fn parse_attachment(z: &zenoh::bytes::ZBytes) -> Option<RmwAttachment> {
    if let Ok((sequence, source_timestamp_ns, gid)) =
        zenoh_ext::z_deserialize::<(i64, i64, [u8; 16])>(z)
    {
        return Some(RmwAttachment {
            sequence,
            source_timestamp_ns,
            gid,
        });
    }
    let mut d = zenoh_ext::ZDeserializer::new(z);
    let mut keyed =
        |key: &str| -> Option<()> { (d.deserialize::<String>().ok()? == key).then_some(()) };
    keyed("sequence_number")?;
    let sequence = d.deserialize::<i64>().ok()?;
    let mut d2 = d;
    if d2.deserialize::<String>().ok()? != "source_timestamp" {
        return None;
    }
    let source_timestamp_ns = d2.deserialize::<i64>().ok()?;
    if d2.deserialize::<String>().ok()? != "source_gid" {
        return None;
    }
    let gid_v = d2.deserialize::<Vec<u8>>().ok()?;
    let gid: [u8; 16] = gid_v.as_slice().try_into().ok()?;
    d2.done().then_some(RmwAttachment {
        sequence,
        source_timestamp_ns,
        gid,
    })
}

/// The DDS type segment of an rmw_zenoh key (`…/<type>/<hash>`), parsed from the right.
pub fn rmw_key_type(key: &str) -> Option<&str> {
    let mut it = key.rsplitn(3, '/');
    let _hash = it.next()?;
    let ty = it.next()?;
    it.next()?;
    Some(ty)
}

/// Live counters of one topic, readable while recording (status, tests).
#[derive(Debug, Default)]
pub struct TopicStats {
    pub received: AtomicU64,
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
    pub malformed: AtomicU64,
    pub wrong_type: AtomicU64,
    pub gaps: AtomicU64,
    pub stale_events: AtomicU64,
    pub last_rx_ns: AtomicU64,
    stale: AtomicBool,
    /// not yet reported (the watchdog writes them out as one event a second)
    pending_malformed: AtomicU64,
    pending_wrong_type: AtomicU64,
    pending_gaps: AtomicU64,
    last_error: Mutex<String>,
    last_seq: Mutex<Option<([u8; 16], i64)>>,
    local_seq: AtomicU64,
}

/// Records configured ROS 2 topics from a Zenoh session.
pub struct ZenohSource {
    session: zenoh::Session,
    cfg: TopicsConfig,
    /// each configured topic's type and modality
    types: Vec<(ResolvedType, Modality)>,
    /// per stream (configured topics, then discovery slots)
    stats: Arc<Vec<TopicStats>>,
    /// the streams as they are now (slots get bound as topics are discovered)
    table: StreamTable,
    registry: Arc<Registry>,
    discovery: Arc<DiscoveryStats>,
}

/// Streams reserved for discovered topics (`[ros] discover`): topics past this many are
/// skipped with an event.
pub const DISCOVERY_SLOTS: usize = 256;

/// What discovery saw (status `discovery`).
#[derive(Debug, Default)]
pub struct DiscoveryStats {
    /// distinct topics announced by publishers
    pub announced: AtomicU64,
    /// discovered topics being recorded
    pub recorded: AtomicU64,
    /// discovered topics not recorded (filtered out, no definition, no slot left)
    pub skipped: AtomicU64,
    /// publisher tokens withdrawn
    pub left: AtomicU64,
    /// topic → why it is not recorded
    pub skipped_topics: Mutex<std::collections::BTreeMap<String, String>>,
    seen: Mutex<std::collections::BTreeSet<String>>,
}

/// A publisher announced by a liveliness token, of either
/// - rmw_zenoh: `@ros2_lv/<domain>/<zid>/<nid>/<eid>/MP/<enclave>/<namespace>/<node>/<topic>/<dds type>/<hash>/<qos>`
///   (names with `/` mangled to `%`), or
/// - zenoh-bridge-ros2dds: `@ros2_lv/<zid>/MP/<key expr>/<ROS type>/<qos>` (`/` escaped as
///   `§`; the bridge serves one DDS domain, so its tokens carry none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcement {
    pub topic: String,
    /// The ROS 2 type name (`sensor_msgs/msg/Imu`), `None` if the announced type is not one.
    pub type_name: Option<String>,
    /// The type as announced (`sensor_msgs::msg::dds_::Imu_` from rmw_zenoh).
    pub announced_type: String,
    /// RIHS01 type hash (rmw_zenoh only).
    pub hash: String,
    pub node: String,
    pub style: KeyStyle,
    /// The key expression the data comes on (bridge: as announced).
    pub key: Option<String>,
}

/// Parse a publisher token (`None` for nodes, subscriptions, services, other domains).
/// `bridge_namespace`: the bridges' namespace (`[ros] bridge_namespace`), taken off their key
/// expressions to give the ROS topic.
pub fn parse_token(key: &str, domain: u32, bridge_namespace: &str) -> Option<Announcement> {
    let p: Vec<&str> = key.split('/').collect();
    if p.first() != Some(&"@ros2_lv") {
        return None;
    }
    if p.len() == 6 && p[2] == "MP" {
        let unescape = |s: &str| s.replace('§', "/");
        let ke = unescape(p[3]);
        let ty = unescape(p[4]);
        if ke.is_empty() {
            return None;
        }
        let ns = bridge_namespace.trim_matches('/');
        let topic = match ke.strip_prefix(ns).and_then(|r| r.strip_prefix('/')) {
            Some(rest) if !ns.is_empty() => rest,
            _ => ke.as_str(),
        };
        return Some(Announcement {
            topic: format!("/{}", topic.trim_start_matches('/')),
            type_name: crate::ros::normalize_name(&ty),
            announced_type: ty,
            hash: String::new(),
            node: format!("zenoh-bridge-ros2dds {}", p[1]),
            style: KeyStyle::Bridge,
            key: Some(ke),
        });
    }
    if p.len() < 12 || p[1] != domain.to_string() || p[5] != "MP" {
        return None;
    }
    let demangle = |s: &str| s.replace('%', "/");
    let topic = demangle(p[9]);
    if !topic.starts_with('/') || topic.len() < 2 {
        return None;
    }
    Some(Announcement {
        topic,
        type_name: crate::ros::from_dds_name(p[10]),
        announced_type: p[10].to_string(),
        hash: p[11].to_string(),
        node: format!("{}/{}", demangle(p[7]).trim_end_matches('/'), p[8]),
        style: KeyStyle::Rmw,
        key: None,
    })
}

impl ZenohSource {
    pub fn new(session: zenoh::Session, cfg: TopicsConfig) -> Result<Self, String> {
        let reg = cfg.registry()?;
        let types = cfg.resolve_all(&reg)?;
        let mut streams: Vec<StreamSpec> = cfg
            .topics
            .iter()
            .zip(&types)
            .map(|(t, (ty, m))| topic_stream(t, ty, *m))
            .collect();
        if cfg.discover {
            streams.extend((0..DISCOVERY_SLOTS).map(|_| StreamSpec::slot()));
        }
        let stats = Arc::new(streams.iter().map(|_| TopicStats::default()).collect());
        Ok(ZenohSource {
            session,
            cfg,
            types,
            stats,
            table: Arc::new(std::sync::RwLock::new(streams)),
            registry: Arc::new(reg),
            discovery: Arc::new(DiscoveryStats::default()),
        })
    }

    /// The streams as they are now, shared: discovered topics bind slots in it.
    pub fn table(&self) -> StreamTable {
        self.table.clone()
    }

    pub fn discovery(&self) -> Arc<DiscoveryStats> {
        self.discovery.clone()
    }

    /// Per-topic counters (same order as the config's topics).
    pub fn stats(&self) -> Arc<Vec<TopicStats>> {
        self.stats.clone()
    }
}

struct Ctx {
    index: usize,
    topic: String,
    ty: ResolvedType,
    stamp: StampFrom,
    style: KeyStyle,
    stats: Arc<Vec<TopicStats>>,
    sink: Arc<dyn SampleSink>,
}

impl Ctx {
    fn on_sample(&self, sample: zenoh::sample::Sample) {
        let host = crate::sim::now_ns();
        let st = &self.stats[self.index];
        st.received.fetch_add(1, Ordering::Relaxed);
        let was_stale = st.stale.swap(false, Ordering::AcqRel);
        let last = st.last_rx_ns.swap(host, Ordering::AcqRel);
        if was_stale {
            self.sink.event(SourceEvent {
                t_ns: host,
                kind: "resumed".into(),
                topic: self.topic.clone(),
                count: 1,
                detail: format!(
                    "messages again after {:.2} s of silence",
                    host.saturating_sub(last) as f64 / 1e9
                ),
            });
        }
        if self.style == KeyStyle::Rmw {
            let key = sample.key_expr().as_str();
            let found = rmw_key_type(key);
            if found != Some(self.ty.dds.as_str()) {
                st.wrong_type.fetch_add(1, Ordering::Relaxed);
                st.pending_wrong_type.fetch_add(1, Ordering::Relaxed);
                *st.last_error.lock().unwrap_or_else(|e| e.into_inner()) = format!(
                    "key {key}: type {} is not the configured {}",
                    found.unwrap_or("?"),
                    self.ty.name
                );
                return;
            }
        }
        let payload = sample.payload().to_bytes();
        let checked = match cdr_check::check_layout(&self.ty.layout, &payload) {
            Ok(c) => c,
            Err(e) => {
                st.malformed.fetch_add(1, Ordering::Relaxed);
                st.pending_malformed.fetch_add(1, Ordering::Relaxed);
                *st.last_error.lock().unwrap_or_else(|e| e.into_inner()) = format!(
                    "key {}: {} bytes: {e}",
                    sample.key_expr().as_str(),
                    payload.len()
                );
                return;
            }
        };
        let att = sample.attachment().and_then(parse_attachment);
        let mut boot_id = 0;
        let sequence = match att {
            Some(a) => {
                let mut last = st.last_seq.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((gid, s)) = *last
                    && gid == a.gid
                    && a.sequence > s + 1
                {
                    let lost = (a.sequence - s - 1) as u64;
                    st.gaps.fetch_add(lost, Ordering::Relaxed);
                    st.pending_gaps.fetch_add(lost, Ordering::Relaxed);
                }
                *last = Some((a.gid, a.sequence));
                boot_id = u64::from_le_bytes(a.gid[..8].try_into().unwrap_or_default());
                a.sequence.max(0) as u64
            }
            None => st.local_seq.fetch_add(1, Ordering::Relaxed),
        };
        let stamp_ns = match (self.stamp, checked.stamp_ns) {
            (StampFrom::Header, Some(ns)) if ns > 0 => ns,
            // a header left unset: the publisher's rmw source time, else receive time
            (StampFrom::Header, Some(_)) => match att {
                Some(a) if a.source_timestamp_ns > 0 => a.source_timestamp_ns as u64,
                _ => host,
            },
            // a type without a header is stamped when received (channel metadata says so)
            (StampFrom::Header, None) | (StampFrom::Receive, _) => host,
        };
        let s = Sample {
            stream: self.index,
            device_stamp_us: stamp_ns / 1000,
            transmit_stamp_us: None,
            host_receive_ns: host,
            sequence,
            boot_id,
            payload: Payload::Raw(bytes::Bytes::from(payload.into_owned())),
        };
        if self.sink.push(s) {
            st.accepted.fetch_add(1, Ordering::Relaxed);
        } else {
            st.refused.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The stream a topic becomes.
fn topic_stream(t: &TopicConfig, ty: &ResolvedType, modality: Modality) -> StreamSpec {
    StreamSpec {
        topic: t.topic.clone(),
        modality,
        // a receive-stamped stream is on the host's clock
        device: if ty.ros_type.stamped {
            t.device()
        } else {
            t.device.clone().unwrap_or_else(|| "host".into())
        },
        rate_hz: t.rate_hz,
        nominal_bytes: match modality {
            Modality::Rgb => 640 * 480 * 3,
            Modality::Depth => 640 * 480 * 2,
            Modality::CompressedRgb => 64 * 1024,
            _ => 512,
        },
        // the five sensor types keep their modality's schema; any other is the registry's
        ros_type: ty.known.is_none().then(|| ty.ros_type.clone()),
    }
}

impl Source for ZenohSource {
    fn name(&self) -> &str {
        "zenoh"
    }

    fn streams(&self) -> Vec<StreamSpec> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn run(self: Box<Self>, sink: Arc<dyn SampleSink>, stop: CancellationToken) -> SourceFuture {
        Box::pin(async move {
            let fail = |message: String| SourceError::Failed {
                source_name: "zenoh".into(),
                message,
            };
            let mut subs = Vec::new();
            for (index, (t, (ty, _))) in self.cfg.topics.iter().zip(&self.types).enumerate() {
                for &style in &self.cfg.key_styles {
                    let key = self.cfg.key_expr(&t.topic, style);
                    let ctx = Ctx {
                        index,
                        topic: t.topic.clone(),
                        ty: ty.clone(),
                        stamp: t.stamp,
                        style,
                        stats: self.stats.clone(),
                        sink: sink.clone(),
                    };
                    let sub = self
                        .session
                        .declare_subscriber(key.clone())
                        .callback(move |s| ctx.on_sample(s))
                        .await
                        .map_err(|e| fail(format!("subscribing to {key}: {e}")))?;
                    tracing::info!(topic = %t.topic, %key, "subscribed");
                    subs.push(sub);
                }
            }
            let (tok_tx, mut tok_rx) = tokio::sync::mpsc::unbounded_channel::<(String, bool)>();
            let mut _token_sub = None;
            if self.cfg.discover {
                // rmw_zenoh's tokens of our domain and zenoh-bridge-ros2dds's (`@ros2_lv/<zid>/MP/…`)
                let ke = "@ros2_lv/**".to_string();
                // tokens already alive (publishers started before us) ...
                match self
                    .session
                    .liveliness()
                    .get(&ke)
                    .timeout(std::time::Duration::from_secs(2))
                    .await
                {
                    Ok(replies) => {
                        while let Ok(r) = replies.recv_async().await {
                            if let Ok(s) = r.result() {
                                let _ = tok_tx.send((s.key_expr().to_string(), true));
                            }
                        }
                    }
                    Err(e) => tracing::warn!("liveliness query {ke}: {e}"),
                }
                // ... then every token that comes or goes
                let tx = tok_tx.clone();
                let sub = self
                    .session
                    .liveliness()
                    .declare_subscriber(&ke)
                    .history(true)
                    .callback(move |s| {
                        let put = s.kind() == zenoh::sample::SampleKind::Put;
                        let _ = tx.send((s.key_expr().to_string(), put));
                    })
                    .await
                    .map_err(|e| fail(format!("subscribing to liveliness {ke}: {e}")))?;
                tracing::info!(%ke, "discovering ROS 2 publishers");
                _token_sub = Some(sub);
            }
            let (include, exclude) = self.cfg.filters().map_err(fail)?;
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => self.watchdog(&*sink),
                    Some((key, put)) = tok_rx.recv() => {
                        if let Some(sub) = self.on_token(&key, put, &include, &exclude, &sink).await {
                            subs.extend(sub);
                        }
                    }
                }
            }
            drop(_token_sub);
            for s in subs {
                let _ = s.undeclare().await;
            }
            self.watchdog(&*sink);
            let produced = self
                .stats
                .iter()
                .map(|s| s.accepted.load(Ordering::Relaxed) + s.refused.load(Ordering::Relaxed))
                .collect();
            let refused = self
                .stats
                .iter()
                .map(|s| s.refused.load(Ordering::Relaxed))
                .collect();
            Ok(SourceReport { produced, refused })
        })
    }
}

impl ZenohSource {
    /// A liveliness token came (`put`) or went: bind a slot to a new publisher's topic and
    /// subscribe to it, or note that a publisher left.
    async fn on_token(
        &self,
        key: &str,
        put: bool,
        include: &[regex::Regex],
        exclude: &[regex::Regex],
        sink: &Arc<dyn SampleSink>,
    ) -> Option<Vec<zenoh::pubsub::Subscriber<()>>> {
        let a = parse_token(key, self.cfg.domain_id, &self.cfg.bridge_namespace)?;
        let now = crate::sim::now_ns();
        let d = &self.discovery;
        let bound = {
            let t = self.table.read().unwrap_or_else(|e| e.into_inner());
            t.iter().position(|s| s.topic == a.topic)
        };
        if !put {
            d.left.fetch_add(1, Ordering::Relaxed);
            if bound.is_some() {
                sink.event(SourceEvent {
                    t_ns: now,
                    kind: "publisher_left".into(),
                    topic: a.topic.clone(),
                    count: 1,
                    detail: format!("node {} withdrew its publisher", a.node),
                });
            }
            return None;
        }
        if !d
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(a.topic.clone())
        {
            return None; // another publisher of a topic we already handled
        }
        d.announced.fetch_add(1, Ordering::Relaxed);
        if bound.is_some() {
            return None; // configured
        }
        let skip = |why: String, event: bool| {
            d.skipped.fetch_add(1, Ordering::Relaxed);
            tracing::info!(topic = %a.topic, "not recorded: {why}");
            if event {
                sink.event(SourceEvent {
                    t_ns: now,
                    kind: "unrecorded_topic".into(),
                    topic: a.topic.clone(),
                    count: 1,
                    detail: why.clone(),
                });
            }
            d.skipped_topics
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(a.topic.clone(), why);
            None
        };
        if !include.is_empty() && !include.iter().any(|r| r.is_match(&a.topic)) {
            return skip("not matched by ros.include".into(), false);
        }
        if let Some(r) = exclude.iter().find(|r| r.is_match(&a.topic)) {
            return skip(format!("excluded by ros.exclude {:?}", r.as_str()), false);
        }
        let Some(name) = a.type_name.clone() else {
            return skip(
                format!("type {:?} is not a ROS 2 message type", a.announced_type),
                true,
            );
        };
        let ty = match ResolvedType::new(&self.registry, &name) {
            Ok(t) => t,
            Err(e) => return skip(e, true),
        };
        let index = {
            let t = self.table.read().unwrap_or_else(|e| e.into_inner());
            t.iter().position(|s| s.is_slot())
        };
        let Some(index) = index else {
            return skip(
                format!("all {DISCOVERY_SLOTS} discovery slots are in use"),
                true,
            );
        };
        let tc = TopicConfig {
            topic: a.topic.clone(),
            type_name: name.clone(),
            device: None,
            modality: None,
            rate_hz: default_rate(),
            stamp: StampFrom::Header,
        };
        let modality = tc.modality(&ty).unwrap_or(Modality::Other);
        let mut spec = topic_stream(&tc, &ty, modality);
        spec.ros_type = Some(ty.ros_type.clone());
        self.table.write().unwrap_or_else(|e| e.into_inner())[index] = spec;
        let mut detail = format!("{name} from node {}; recorded from here on", a.node);
        if a.hash.starts_with("RIHS01_") && a.hash != ty.ros_type.hash {
            detail.push_str(&format!(
                "; the publisher's type hash {} differs from our definition's {} (another ROS distribution or package version?)",
                a.hash, ty.ros_type.hash
            ));
        }
        tracing::info!(topic = %a.topic, "discovered: {detail}");
        sink.event(SourceEvent {
            t_ns: now,
            kind: "discovered".into(),
            topic: a.topic.clone(),
            count: 1,
            detail,
        });
        d.recorded.fetch_add(1, Ordering::Relaxed);
        let mut subs = Vec::new();
        // where the announcer publishes (a bridge: its exact key expression)
        let key = a
            .key
            .clone()
            .unwrap_or_else(|| self.cfg.key_expr(&a.topic, a.style));
        {
            let ctx = Ctx {
                index,
                topic: a.topic.clone(),
                ty: ty.clone(),
                stamp: StampFrom::Header,
                style: a.style,
                stats: self.stats.clone(),
                sink: sink.clone(),
            };
            match self
                .session
                .declare_subscriber(key.clone())
                .callback(move |s| ctx.on_sample(s))
                .await
            {
                Ok(s) => subs.push(s),
                Err(e) => tracing::warn!(%key, "subscribing to a discovered topic: {e}"),
            }
        }
        Some(subs)
    }

    /// Report what was counted since the last tick as events; flag silent publishers.
    fn watchdog(&self, sink: &dyn SampleSink) {
        let now = crate::sim::now_ns();
        // read, not cloned: specs carry whole schema texts; the writer only reads it too
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        for (t, st) in table.iter().zip(self.stats.iter()) {
            if t.is_slot() {
                continue;
            }
            let last_error = || {
                st.last_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
            };
            for (kind, pending, what) in [
                (
                    "malformed",
                    &st.pending_malformed,
                    "malformed messages not recorded",
                ),
                (
                    "wrong_type",
                    &st.pending_wrong_type,
                    "messages of another type not recorded",
                ),
            ] {
                let n = pending.swap(0, Ordering::AcqRel);
                if n > 0 {
                    let detail = format!("{n} {what}; last: {}", last_error());
                    tracing::warn!(topic = %t.topic, "{detail}");
                    sink.event(SourceEvent {
                        t_ns: now,
                        kind: kind.into(),
                        topic: t.topic.clone(),
                        count: n,
                        detail,
                    });
                }
            }
            let n = st.pending_gaps.swap(0, Ordering::AcqRel);
            if n > 0 {
                sink.event(SourceEvent {
                    t_ns: now,
                    kind: "gap".into(),
                    topic: t.topic.clone(),
                    count: n,
                    detail: format!(
                        "{n} messages missing in the publisher's sequence numbers (lost before the recorder)"
                    ),
                });
            }
            let last = st.last_rx_ns.load(Ordering::Acquire);
            let period_ns = 1e9 / t.rate_hz;
            let limit = (self.cfg.stale_after_ms * 1_000_000).max((5.0 * period_ns) as u64);
            if last > 0
                && now.saturating_sub(last) > limit
                && !st.stale.swap(true, Ordering::AcqRel)
            {
                st.stale_events.fetch_add(1, Ordering::Relaxed);
                let detail = format!(
                    "no message for {:.2} s (publisher gone?)",
                    now.saturating_sub(last) as f64 / 1e9
                );
                tracing::warn!(topic = %t.topic, "{detail}");
                sink.event(SourceEvent {
                    t_ns: now,
                    kind: "stale".into(),
                    topic: t.topic.clone(),
                    count: 1,
                    detail,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_in_both_styles() {
        let mut c = TopicsConfig::default();
        assert_eq!(
            c.key_expr("/camera/head/image_raw", KeyStyle::Bridge),
            "camera/head/image_raw"
        );
        assert_eq!(
            c.key_expr("/camera/head/image_raw", KeyStyle::Rmw),
            "0/camera/head/image_raw/*/*"
        );
        c.bridge_namespace = "/robot1/".into();
        c.domain_id = 7;
        assert_eq!(
            c.key_expr("/joint_states", KeyStyle::Bridge),
            "robot1/joint_states"
        );
        assert_eq!(
            c.key_expr("/joint_states", KeyStyle::Rmw),
            "7/joint_states/*/*"
        );
    }

    #[test]
    fn publisher_tokens_of_rmw_zenoh_and_the_bridge_parse() {
        let rmw = "@ros2_lv/0/aa11/0/12/MP/%/%/peer_node/%imu%data/sensor_msgs::msg::dds_::Imu_/RIHS01_ab/::,10:,:,:,,";
        let a = parse_token(rmw, 0, "").unwrap();
        assert_eq!(a.topic, "/imu/data");
        assert_eq!(a.type_name.as_deref(), Some("sensor_msgs/msg/Imu"));
        assert_eq!((a.style, a.key.as_deref()), (KeyStyle::Rmw, None));
        assert_eq!(a.hash, "RIHS01_ab");
        assert_eq!(a.node, "/peer_node");
        assert!(parse_token(rmw, 3, "").is_none(), "another domain");
        let node = "@ros2_lv/0/aa11/0/0/NN/%/%/joint_driver";
        assert!(parse_token(node, 0, "").is_none());
        let sub = rmw.replace("/MP/", "/MS/");
        assert!(parse_token(&sub, 0, "").is_none());

        let bridge = "@ros2_lv/bb22/MP/bridge§cmd_vel/geometry_msgs§msg§Twist/:1:1:1,10";
        let b = parse_token(bridge, 5, "").unwrap();
        assert_eq!(b.topic, "/bridge/cmd_vel");
        assert_eq!(b.type_name.as_deref(), Some("geometry_msgs/msg/Twist"));
        assert_eq!(
            (b.style, b.key.as_deref()),
            (KeyStyle::Bridge, Some("bridge/cmd_vel"))
        );
        // a bridge namespace is not part of the topic
        let ns = "@ros2_lv/bb22/MP/robot1§joint_states/sensor_msgs§msg§JointState/:::";
        let c = parse_token(ns, 0, "/robot1/").unwrap();
        assert_eq!(
            (c.topic.as_str(), c.key.as_deref()),
            ("/joint_states", Some("robot1/joint_states"))
        );
        assert!(parse_token("@ros2_lv/bb22/MS/x/std_msgs§msg§String/:::", 0, "").is_none());
        let odd = parse_token("@ros2_lv/bb22/MP/x/not a type/:::", 0, "").unwrap();
        assert_eq!(odd.type_name, None);
    }

    #[test]
    fn rmw_type_is_parsed_from_the_right() {
        let key = "0/camera/head/image_raw/sensor_msgs::msg::dds_::Image_/RIHS01_abc";
        assert_eq!(rmw_key_type(key), Some("sensor_msgs::msg::dds_::Image_"));
        assert_eq!(
            KnownType::from_dds_name(rmw_key_type(key).unwrap()),
            Some(KnownType::Image)
        );
        assert_eq!(rmw_key_type("camera"), None);
    }

    #[test]
    fn both_attachment_forms_parse() {
        let gid = [7u8; 16];
        let z = zenoh_ext::z_serialize(&(42i64, 1_700_000_000_000_000_000i64, gid));
        let a = parse_attachment(&z).unwrap();
        assert_eq!(
            (a.sequence, a.source_timestamp_ns, a.gid),
            (42, 1_700_000_000_000_000_000, gid)
        );
        let mut s = zenoh_ext::ZSerializer::new();
        s.serialize("sequence_number");
        s.serialize(5i64);
        s.serialize("source_timestamp");
        s.serialize(99i64);
        s.serialize("source_gid");
        s.serialize(gid.to_vec());
        let a = parse_attachment(&s.finish()).unwrap();
        assert_eq!((a.sequence, a.source_timestamp_ns, a.gid), (5, 99, gid));
        assert!(parse_attachment(&zenoh_ext::z_serialize(&1u8)).is_none());
    }

    #[test]
    fn config_is_checked() {
        let mut c = TopicsConfig::default();
        c.topics.push(TopicConfig {
            topic: "/x".into(),
            type_name: "std_msgs/msg/String".into(),
            device: None,
            modality: None,
            rate_hz: 10.0,
            stamp: StampFrom::Header,
        });
        c.validate().unwrap();
        let reg = c.registry().unwrap();
        let ty = c.topics[0].resolve(&reg).unwrap();
        assert_eq!(c.topics[0].modality(&ty).unwrap(), Modality::Other);
        assert!(!ty.ros_type.stamped);
        assert_eq!(ty.dds, "std_msgs::msg::dds_::String_");
        c.topics[0].modality = Some(Modality::Rgb);
        let e = c.validate().unwrap_err();
        assert!(e.contains("does not fit type std_msgs/msg/String"), "{e}");
        c.topics[0].modality = None;
        c.topics[0].type_name = "my_pkg/msg/Gripper".into();
        let e = c.validate().unwrap_err();
        assert!(
            e.contains("my_pkg/msg/Gripper has no definition") && e.contains("msg_paths"),
            "{e}"
        );
        c.topics[0].type_name = "sensor_msgs/msg/Image".into();
        c.topics[0].topic = "/camera/depth".into();
        c.validate().unwrap();
        let ty = c.topics[0].resolve(&reg).unwrap();
        assert_eq!(c.topics[0].modality(&ty).unwrap(), Modality::Depth);
        assert_eq!(c.topics[0].device(), "camera_depth");
        c.topics[0].topic = "camera".into();
        assert!(c.validate().is_err());
        c.topics.clear();
        c.exclude = vec!["(".into()];
        assert!(c.validate().unwrap_err().contains("ros.exclude"));
        c.exclude.clear();
        c.msg_paths = vec!["/nonexistent/share".into()];
        assert!(c.validate().unwrap_err().contains("/nonexistent/share"));
    }

    #[test]
    fn msg_paths_add_custom_types() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("share/my_pkg/msg");
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(
            m.join("Gripper.msg"),
            "std_msgs/Header header\nfloat64 width\nmy_pkg/Finger[2] fingers\n",
        )
        .unwrap();
        std::fs::write(m.join("Finger.msg"), "float32 force # N\n").unwrap();
        let c = TopicsConfig {
            msg_paths: vec![d.path().join("share")],
            ..Default::default()
        };
        let reg = c.registry().unwrap();
        let ty = ResolvedType::new(&reg, "my_pkg/Gripper").unwrap();
        assert!(ty.ros_type.stamped);
        assert!(
            ty.ros_type
                .schema
                .contains("MSG: my_pkg/Finger\nfloat32 force # N"),
            "{}",
            ty.ros_type.schema
        );
        assert!(ty.ros_type.schema.contains("MSG: builtin_interfaces/Time"));
    }
}

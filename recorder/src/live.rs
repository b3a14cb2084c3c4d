//! The live copy: a decimated stream of every sensor over Zenoh, for `demotape view --live`
//! (which draws it in Rerun; the edge binary never links Rerun).
//!
//! Key expressions: `<control.key_prefix>/<robot>/live/<topic without the leading '/'>`, e.g.
//! `demotape/sim-robot/live/camera/head/image_raw`. Each put is one ROS 2 message in CDR
//! (encoding `application/cdr` with the type name as schema) and carries a JSON attachment
//! `{"topic", "schema", "receive_ns", "sequence", "stride"}`. Times are **host receive
//! times**: the synchronized capture time only exists once a sample has been through the
//! episode's clock fit, which the live path never waits for.
//!
//! Cost to the recording, by construction:
//! - [`LiveTap::offer`] runs in the sensor driver's push, before the capture queue. Unless a
//!   viewer is subscribed (Zenoh matching status, kept in one flag per topic) it is one
//!   relaxed atomic load. With a viewer, a stream is due at most `image_hz`/`signal_hz`
//!   times a second; only then is the sample cloned and offered to a small bounded channel
//!   with `try_send`: if the publisher thread is behind, the copy is dropped and counted
//!   (`dropped_busy`). The recording never waits for the live path.
//! - The publisher thread does the rest: image decimation (`image_stride`, nearest pixel, so
//!   depth stays real measurements), CDR encoding, and the put, with congestion control
//!   `Drop` and priority `DataLow` so a slow viewer link never backs up into the recorder and
//!   control messages go first.

use crate::config::sanitize;
use hal::{Modality, Payload, Sample, StreamSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use zenoh::Wait;

/// `[live]`: the decimated live copy for viewers.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LiveConfig {
    /// Publish the live copy (the service always has a Zenoh session; `sim` opens one only
    /// with `--live`).
    pub enabled: bool,
    /// Camera and depth frames per second and stream.
    pub image_hz: f64,
    /// Joint state, wrench and tactile messages per second and stream.
    pub signal_hz: f64,
    /// Keep every n-th pixel of every n-th row of raw images (1 = full resolution).
    pub image_stride: u32,
    /// Copies waiting for the publisher thread; beyond this they are dropped and counted.
    pub queue_messages: usize,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            enabled: true,
            image_hz: 5.0,
            signal_hz: 30.0,
            image_stride: 2,
            queue_messages: 16,
        }
    }
}

impl LiveConfig {
    pub fn validate(&self) -> Result<(), String> {
        for (k, v) in [("image_hz", self.image_hz), ("signal_hz", self.signal_hz)] {
            if !(v > 0.0 && v <= 1000.0) {
                return Err(format!("live.{k} = {v} must be in (0, 1000]"));
            }
        }
        if !(1..=16).contains(&self.image_stride) {
            return Err(format!(
                "live.image_stride = {} must be in 1..=16",
                self.image_stride
            ));
        }
        if !(1..=1024).contains(&self.queue_messages) {
            return Err(format!(
                "live.queue_messages = {} must be in 1..=1024",
                self.queue_messages
            ));
        }
        Ok(())
    }
}

/// The key a topic's live copy is published on.
pub fn live_key(prefix: &str, robot: &str, topic: &str) -> String {
    format!(
        "{prefix}/{}/live/{}",
        sanitize(robot),
        topic.trim_matches('/')
    )
}

/// Counters of the live path (none of them are recording drops: the episode has every
/// sample whatever happens here).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct LiveCounters {
    /// Copies taken for publication (streams due while a viewer was subscribed).
    pub taken: u64,
    /// Copies dropped because the publisher thread was behind.
    pub dropped_busy: u64,
    /// Messages put on Zenoh.
    pub published: u64,
    /// Messages that could not be encoded or put.
    pub errors: u64,
    /// Topics with a subscribed viewer right now.
    pub topics_watched: u64,
}

#[derive(Default)]
struct Stats {
    taken: AtomicU64,
    dropped_busy: AtomicU64,
    published: AtomicU64,
    errors: AtomicU64,
}

struct Topic {
    topic: String,
    modality: Modality,
    type_name: String,
    publisher: zenoh::pubsub::Publisher<'static>,
    /// A subscriber matches this topic's key (kept current by a matching listener).
    watched: Arc<AtomicBool>,
}

type Copy = (Arc<Topic>, Sample);

/// Owns the live publishers and the publisher thread of one Zenoh session.
pub struct LiveHub {
    session: zenoh::Session,
    prefix: String,
    robot: String,
    cfg: LiveConfig,
    topics: Mutex<BTreeMap<String, Arc<Topic>>>,
    tx: crossbeam_channel::Sender<Copy>,
    stats: Arc<Stats>,
    /// Type name → ros2msg schema text of every live topic (served on `.../schemas`).
    schemas: Arc<Mutex<BTreeMap<String, String>>>,
    /// Whether [`crate::record_episode`] publishes the status itself, and how often (`sim`;
    /// the service has its own status task).
    status_every: Option<std::time::Duration>,
    /// Episodes [`crate::record_episode`] finished with this hub (for the status).
    episodes_done: AtomicU64,
}

/// The key of the schema queryable.
pub fn schemas_key(prefix: &str, robot: &str) -> String {
    format!("{prefix}/{}/schemas", sanitize(robot))
}

impl LiveHub {
    /// Start the publisher thread. Call [`LiveHub::tap`] for each set of streams.
    pub fn start(
        session: zenoh::Session,
        prefix: &str,
        robot: &str,
        cfg: LiveConfig,
    ) -> anyhow::Result<LiveHub> {
        let (tx, rx) = crossbeam_channel::bounded::<Copy>(cfg.queue_messages);
        let schemas: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
        let key = schemas_key(prefix, robot);
        let served = schemas.clone();
        session
            .declare_queryable(key.clone())
            .callback(move |q| {
                let body = {
                    let m = served.lock().unwrap_or_else(|e| e.into_inner());
                    serde_json::to_string(&*m).unwrap_or_default()
                };
                if let Err(e) = q.reply(q.key_expr().clone(), body).wait() {
                    tracing::debug!("answering a schema query: {e}");
                }
            })
            .background()
            .wait()
            .map_err(|e| anyhow::anyhow!("declaring the schema queryable {key}: {e}"))?;
        tracing::info!(
            keys = %live_key(prefix, robot, "**"),
            schemas = %key,
            image_hz = cfg.image_hz,
            signal_hz = cfg.signal_hz,
            stride = cfg.image_stride,
            "live copy for `demotape view --live`"
        );
        let stats = Arc::new(Stats::default());
        let st = stats.clone();
        let stride = cfg.image_stride;
        std::thread::Builder::new()
            .name("live-publisher".into())
            .spawn(move || publish_loop(rx, &st, stride))?;
        Ok(LiveHub {
            session,
            prefix: prefix.to_string(),
            robot: robot.to_string(),
            cfg,
            topics: Mutex::new(BTreeMap::new()),
            tx,
            stats,
            schemas,
            status_every: None,
            episodes_done: AtomicU64::new(0),
        })
    }

    /// Have [`crate::record_episode`] publish the recorder status
    /// ([`crate::service::Status`]) on `<prefix>/<robot>/status` every `period` while it
    /// records, and once more (idle) when the episode ends.
    pub fn publish_status_every(&mut self, period: std::time::Duration) {
        self.status_every = Some(period);
    }

    pub(crate) fn status_every(&self) -> Option<std::time::Duration> {
        self.status_every
    }

    /// Put one status message (JSON) on the status key. Blocks briefly on Zenoh.
    pub(crate) fn put_status(&self, json: String) {
        let key = crate::service::status_key(&self.prefix, &self.robot);
        if let Err(e) = self.session.put(&key, json).wait() {
            tracing::warn!("publishing status on {key}: {e}");
        }
    }

    pub(crate) fn robot(&self) -> &str {
        &self.robot
    }

    pub(crate) fn episodes_done(&self) -> u64 {
        self.episodes_done.load(Relaxed)
    }

    /// Count one more finished episode; the new total.
    pub(crate) fn episode_done(&self) -> u64 {
        self.episodes_done.fetch_add(1, Relaxed) + 1
    }

    /// A tap for `streams` (indexed like them). Publishers are declared once per topic and
    /// shared by later taps (one per episode in `sim`). Blocks briefly on Zenoh: call it
    /// outside async code or inside `block_in_place`.
    pub fn tap(&self, streams: &[StreamSpec]) -> anyhow::Result<Arc<LiveTap>> {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::with_capacity(streams.len());
        {
            let mut m = self.schemas.lock().unwrap_or_else(|e| e.into_inner());
            for s in streams.iter().filter(|s| !s.is_slot()) {
                m.entry(s.type_name().to_string())
                    .or_insert_with(|| s.schema_text());
            }
        }
        for s in streams {
            if s.is_slot() {
                // a discovery slot: no live copy (topics found later are not offered live)
                out.push(None);
                continue;
            }
            if let Some(t) = topics.get(&s.topic) {
                out.push(Some(t.clone()));
                continue;
            }
            let key = live_key(&self.prefix, &self.robot, &s.topic);
            let publisher = self
                .session
                .declare_publisher(key.clone())
                .encoding(zenoh::bytes::Encoding::APPLICATION_CDR.with_schema(s.type_name()))
                .congestion_control(zenoh::qos::CongestionControl::Drop)
                .priority(zenoh::qos::Priority::DataLow)
                .wait()
                .map_err(|e| anyhow::anyhow!("declaring the live publisher {key}: {e}"))?;
            let watched = Arc::new(AtomicBool::new(false));
            let w = watched.clone();
            publisher
                .matching_listener()
                .callback(move |m| w.store(m.matching(), Relaxed))
                .background()
                .wait()
                .map_err(|e| anyhow::anyhow!("watching subscribers of {key}: {e}"))?;
            if let Ok(m) = publisher.matching_status().wait() {
                watched.store(m.matching(), Relaxed);
            }
            let t = Arc::new(Topic {
                topic: s.topic.clone(),
                modality: s.modality,
                type_name: s.type_name().to_string(),
                publisher,
                watched,
            });
            topics.insert(s.topic.clone(), t.clone());
            out.push(Some(t));
        }
        let period = |m: Modality| {
            let hz = match m {
                Modality::Rgb | Modality::Depth | Modality::CompressedRgb => self.cfg.image_hz,
                _ => self.cfg.signal_hz,
            };
            (1e9 / hz) as u64
        };
        Ok(Arc::new(LiveTap {
            period_ns: streams.iter().map(|s| period(s.modality)).collect(),
            next_due: streams.iter().map(|_| AtomicU64::new(0)).collect(),
            topics: out,
            tx: self.tx.clone(),
            stats: self.stats.clone(),
        }))
    }

    /// The counters so far.
    pub fn counters(&self) -> LiveCounters {
        let topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        LiveCounters {
            taken: self.stats.taken.load(Relaxed),
            dropped_busy: self.stats.dropped_busy.load(Relaxed),
            published: self.stats.published.load(Relaxed),
            errors: self.stats.errors.load(Relaxed),
            topics_watched: topics.values().filter(|t| t.watched.load(Relaxed)).count() as u64,
        }
    }
}

/// The hot-path half: decides per sample whether a copy goes live.
pub struct LiveTap {
    topics: Vec<Option<Arc<Topic>>>,
    period_ns: Vec<u64>,
    next_due: Vec<AtomicU64>,
    tx: crossbeam_channel::Sender<Copy>,
    stats: Arc<Stats>,
}

impl LiveTap {
    /// Offer a sample (global stream index). Never blocks; see the module docs for the cost.
    #[inline]
    pub fn offer(&self, s: &Sample) {
        let Some(Some(topic)) = self.topics.get(s.stream) else {
            return;
        };
        if !topic.watched.load(Relaxed) {
            return;
        }
        let (due, period) = (&self.next_due[s.stream], self.period_ns[s.stream]);
        let (d, t) = (due.load(Relaxed), s.host_receive_ns);
        if t < d {
            return;
        }
        // on the grid while keeping up; restart it at `t` after a pause
        let next = if t - d > period {
            t + period
        } else {
            d + period
        };
        if due.compare_exchange(d, next, Relaxed, Relaxed).is_err() {
            return; // another thread took this slot
        }
        match self.tx.try_send((topic.clone(), s.clone())) {
            Ok(()) => self.stats.taken.fetch_add(1, Relaxed),
            Err(_) => self.stats.dropped_busy.fetch_add(1, Relaxed),
        };
    }
}

fn publish_loop(rx: crossbeam_channel::Receiver<Copy>, stats: &Stats, stride: u32) {
    let mut warned = false;
    let mut buf = Vec::new();
    for (topic, sample) in rx {
        let r = encode(
            &topic.topic,
            topic.modality,
            &topic.type_name,
            sample,
            stride,
            &mut buf,
        )
        .and_then(|att| {
            topic
                .publisher
                .put(std::mem::take(&mut buf))
                .attachment(att)
                .wait()
                .map_err(|e| format!("put on {}: {e}", topic.publisher.key_expr()))
        });
        match r {
            Ok(()) => stats.published.fetch_add(1, Relaxed),
            Err(e) => {
                if !warned {
                    tracing::warn!(topic = %topic.topic, "live copy: {e} (further errors are only counted)");
                    warned = true;
                }
                stats.errors.fetch_add(1, Relaxed)
            }
        };
    }
}

/// The live message of `s` into `out`: images decimated by `stride`, our own messages
/// stamped with the receive time (raw network messages keep the publisher's stamp).
/// Returns the attachment (its `stride` is the one actually applied).
fn encode(
    topic: &str,
    modality: Modality,
    type_name: &str,
    mut s: Sample,
    stride: u32,
    out: &mut Vec<u8>,
) -> Result<String, String> {
    let t = s.host_receive_ns;
    let mut applied = 1;
    if matches!(modality, Modality::Rgb | Modality::Depth) && stride > 1 {
        let img = match &s.payload {
            Payload::Image(img) => Some(img.downsampled(stride)),
            Payload::Raw(b) => hal::msgs::decode::<hal::msgs::Image>(b)
                .ok()
                .map(|img| img.downsampled(stride)),
            _ => None,
        };
        // unknown encodings (e.g. Bayer) go out at full resolution
        if let Some(Some(img)) = img {
            let keep_stamp = matches!(s.payload, Payload::Raw(_));
            let mut img = img;
            if !keep_stamp {
                img.header.stamp = hal::msgs::Time::from_nanos(t);
            }
            s.payload = Payload::Image(img);
            applied = stride;
        }
    } else if let Some(h) = s.payload.header_mut() {
        h.stamp = hal::msgs::Time::from_nanos(t);
    }
    out.clear();
    s.payload
        .encode_into(out)
        .map_err(|e| format!("encoding {topic}: {e}"))?;
    let att = serde_json::json!({
        "topic": topic,
        "schema": type_name,
        "receive_ns": t,
        "sequence": s.sequence,
        "stride": applied,
    });
    Ok(att.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_topic() {
        assert_eq!(
            live_key("demotape", "arm 1", "/camera/head/image_raw"),
            "demotape/arm_1/live/camera/head/image_raw"
        );
    }

    #[test]
    fn bad_values_are_named() {
        let c = LiveConfig {
            image_stride: 0,
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().contains("live.image_stride"));
        let c = LiveConfig {
            image_hz: 0.0,
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().contains("live.image_hz"));
        assert!(LiveConfig::default().validate().is_ok());
    }
    /// A network image (raw CDR, big-endian even) is decoded, decimated and re-encoded, its
    /// publisher's stamp kept; an encoding we cannot resample goes out untouched.
    #[test]
    fn raw_images_are_decimated_too() {
        use hal::msgs::{Image, RosMessage, Time};
        let mut img = Image {
            height: 6,
            width: 8,
            encoding: "mono8".into(),
            step: 8,
            data: (0u8..48).collect(),
            ..Default::default()
        };
        img.header.stamp = Time::from_nanos(42);
        let be = cdr::serialize::<_, _, cdr::CdrBe>(&img, cdr::Infinite).unwrap();
        let raw = sample(0, 1_000, Payload::Raw(be.into()));
        let mut out = Vec::new();
        let enc = |raw, out: &mut Vec<u8>| -> serde_json::Value {
            let att = encode("/cam", Modality::Rgb, "sensor_msgs/msg/Image", raw, 2, out);
            serde_json::from_str(&att.unwrap()).unwrap()
        };
        let att = enc(raw, &mut out);
        assert_eq!(att["stride"], 2, "{att}");
        let back: Image = hal::msgs::decode(&out).unwrap();
        assert_eq!(
            (back.width, back.height, back.header.stamp.as_nanos()),
            (4, 3, 42)
        );
        assert_eq!(back.data, img.downsampled(2).unwrap().data);
        let bayer = Image {
            encoding: "bayer_rggb8".into(),
            ..img
        };
        let bytes = bayer.encode().unwrap();
        let raw = sample(0, 1_000, Payload::Raw(bytes.clone().into()));
        let att = enc(raw, &mut out);
        assert_eq!((&att["stride"], &out), (&serde_json::json!(1), &bytes));
    }

    fn stream(topic: &str, modality: Modality) -> StreamSpec {
        StreamSpec {
            topic: topic.into(),
            modality,
            device: "d".into(),
            rate_hz: 1000.0,
            ros_type: None,
            nominal_bytes: 100,
        }
    }

    fn sample(stream: usize, t: u64, payload: Payload) -> Sample {
        Sample {
            stream,
            device_stamp_us: t / 1000,
            transmit_stamp_us: None,
            host_receive_ns: t,
            sequence: t / 1_000_000,
            boot_id: 1,
            payload,
        }
    }

    /// A real Zenoh session: nothing is copied while nobody listens; with a subscriber, a
    /// 1 kHz stream arrives at `signal_hz`, a 30 Hz camera at `image_hz`, decimated by the
    /// stride, with the attachment describing it.
    #[test]
    fn decimates_only_while_a_viewer_listens() {
        let zc = hal::zenoh::SessionConfig {
            multicast_scouting: false,
            ..Default::default()
        };
        let session = zenoh::open(zc.to_zenoh().unwrap()).wait().unwrap();
        let cfg = LiveConfig {
            queue_messages: 1024,
            ..Default::default()
        };
        let hub = LiveHub::start(session.clone(), "t", "bot", cfg).unwrap();
        let tap = hub
            .tap(&[
                stream("/wrist/right/wrench", Modality::Wrench),
                stream("/camera/head/image_raw", Modality::Rgb),
            ])
            .unwrap();
        let img = hal::msgs::Image {
            height: 4,
            width: 6,
            encoding: "rgb8".into(),
            step: 18,
            data: (0u8..72).collect(),
            ..Default::default()
        };
        let feed = |t0: u64| {
            for k in 0..1000u64 {
                let t = t0 + k * 1_000_000;
                tap.offer(&sample(0, t, Payload::Wrench(Default::default())));
                if k % 33 == 0 {
                    tap.offer(&sample(1, t, Payload::Image(img.clone())));
                }
            }
        };
        feed(1_000_000_000);
        assert_eq!(hub.counters().taken, 0, "nobody listens: nothing copied");
        let sub = session
            .declare_subscriber("t/bot/live/**")
            .with(zenoh::handlers::FifoChannel::new(4096))
            .wait()
            .unwrap();
        let t_wait = std::time::Instant::now();
        while hub.counters().topics_watched < 2 && t_wait.elapsed().as_secs() < 5 {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(hub.counters().topics_watched, 2);
        feed(10_000_000_000);
        let mut got: BTreeMap<String, Vec<(serde_json::Value, Vec<u8>)>> = BTreeMap::new();
        let t_wait = std::time::Instant::now();
        let mut settle = None;
        // until everything published has arrived, then 300 ms more for any extra
        while settle.is_none_or(|t: std::time::Instant| t.elapsed().as_millis() < 300)
            && t_wait.elapsed().as_secs() < 5
        {
            if settle.is_none()
                && got.values().map(Vec::len).sum::<usize>() as u64 >= hub.counters().published
            {
                settle = Some(std::time::Instant::now());
            }
            if let Ok(Some(s)) = sub.recv_timeout(std::time::Duration::from_millis(20)) {
                let att: serde_json::Value =
                    serde_json::from_slice(&s.attachment().unwrap().to_bytes()).unwrap();
                got.entry(s.key_expr().to_string())
                    .or_default()
                    .push((att, s.payload().to_bytes().to_vec()));
            }
        }
        let w = &got["t/bot/live/wrist/right/wrench"];
        let c = &got["t/bot/live/camera/head/image_raw"];
        // 1 s of receive time: 30 Hz -> 30 or 31 slots, 5 Hz -> 5 (frames every 33 ms)
        assert!((30..=31).contains(&w.len()), "{}", w.len());
        assert!((5..=6).contains(&c.len()), "{}", c.len());
        let (att, bytes) = &c[0];
        assert_eq!(att["schema"], "sensor_msgs/msg/Image");
        assert_eq!(att["stride"], 2);
        let back: hal::msgs::Image = hal::msgs::decode(bytes).unwrap();
        assert_eq!((back.width, back.height), (3, 2));
        assert_eq!(back.data, img.downsampled(2).unwrap().data);
        assert_eq!(
            back.header.stamp.as_nanos(),
            att["receive_ns"].as_u64().unwrap()
        );
        let c = hub.counters();
        assert_eq!(c.dropped_busy + c.errors, 0, "{c:?}");
        assert_eq!(c.published, c.taken);
    }
}

//! Messages of any ROS 2 type, decoded with the schema the file itself carries (the
//! `ros2msg` text rosbag2 and demotape embed), by `hal::ros`: what every command uses for a
//! type it does not know at compile time (`inspect --sample`, field paths).

use crate::read::Selection;
use anyhow::{Context, bail};
use hal::ros::{Layout, Registry, Value};
use std::sync::Arc;

/// The compiled type of channel `channel_id`, from its schema in the file (definitions the
/// schema lacks resolve against the built-in standard packages).
pub fn channel_layout(sel: &Selection, channel_id: u16) -> anyhow::Result<Arc<Layout>> {
    let ch = sel
        .channels
        .get(&channel_id)
        .with_context(|| format!("no channel {channel_id}"))?;
    let name = sel
        .schemas
        .get(&ch.schema_id)
        .with_context(|| format!("channel {}: no schema {}", ch.topic, ch.schema_id))?;
    if ch.message_encoding != "cdr" {
        bail!(
            "channel {}: message encoding {:?} (only cdr is decoded)",
            ch.topic,
            ch.message_encoding
        );
    }
    let reg = match sel.schema_texts.get(&ch.schema_id) {
        Some(text) => Registry::builtin()
            .with_schema(name, text)
            .with_context(|| format!("channel {}: schema {name}", ch.topic))?,
        None => Registry::builtin().clone(),
    };
    reg.layout(name)
        .with_context(|| format!("channel {}: schema {name}", ch.topic))
}

/// Decode up to `n` messages of `topic` (evenly spread over the selection), each with its
/// log time.
pub fn sample(sel: &Selection, topic: &str, n: usize) -> anyhow::Result<Vec<(u64, Value)>> {
    let (id, _) = sel
        .channels
        .iter()
        .find(|(_, c)| c.topic == topic)
        .with_context(|| {
            format!(
                "no topic {topic} (topics: {})",
                sel.channels
                    .values()
                    .map(|c| c.topic.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
    let layout = channel_layout(sel, *id)?;
    let msgs = sel.messages.get(id).map_or(&[][..], Vec::as_slice);
    let step = (msgs.len() / n.max(1)).max(1);
    msgs.iter()
        .step_by(step)
        .take(n)
        .map(|m| {
            hal::ros::decode(&layout, &m.data)
                .map(|v| (m.header.log_time, v))
                .with_context(|| format!("{topic}: message at log time {} ns", m.header.log_time))
        })
        .collect()
}

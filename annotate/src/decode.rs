//! Messages of any ROS 2 type, decoded with the schema the file itself carries (the
//! `ros2msg` text rosbag2 and demotape embed), by `hal::ros`: what every command uses for a
//! type it does not know at compile time (`inspect --sample`, field paths).

use crate::read::Selection;
use anyhow::{Context, bail};
use hal::ros::{FieldPath, Layout, Registry, Seg, Value};
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
    schema_layout(
        name,
        sel.schema_texts.get(&ch.schema_id).map(String::as_str),
    )
    .with_context(|| format!("channel {}: schema {name}", ch.topic))
}

/// The compiled type `name`, from a `ros2msg` schema text when there is one (definitions it
/// lacks resolve against the built-in standard packages), else from the built-ins alone.
pub fn schema_layout(name: &str, text: Option<&str>) -> Result<Arc<Layout>, hal::ros::DefError> {
    match text {
        Some(text) => Registry::builtin().with_schema(name, text)?.layout(name),
        None => Registry::builtin().layout(name),
    }
}

/// Every number of a message but its header's, each with its path (`linear.x`, `data[3]`).
pub fn body_numbers(msg: &Value) -> Vec<(String, f64)> {
    match msg {
        Value::Struct(fields) => fields
            .iter()
            .filter(|(n, _)| &**n != "header")
            .flat_map(|(n, v)| {
                v.numbers()
                    .into_iter()
                    .map(move |(rel, x)| (join(n, &rel), x))
            })
            .collect(),
        v => v.numbers(),
    }
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

/// A topic and a field path into its messages, as users write it:
/// `/joint_states.position`, `/arm_controller/commands.data`, `/imu.linear_acceleration`,
/// `/cmd.points[0].positions`, or a bare topic (every number of the message but its header).
/// ROS 2 topic names have no `.`, so the first one ends the topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicPath {
    pub topic: String,
    pub field: FieldPath,
}

impl std::str::FromStr for TopicPath {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (topic, field) = s.split_once('.').unwrap_or((s, ""));
        if !topic.starts_with('/') || topic.len() < 2 {
            return Err(format!(
                "{s:?}: a field path starts with its topic (e.g. /joint_states.position)"
            ));
        }
        if topic.contains(['[', ']']) {
            return Err(format!(
                "{s:?}: index a field, not the topic (e.g. /cmd.points[0].positions)"
            ));
        }
        Ok(TopicPath {
            topic: topic.to_string(),
            field: FieldPath::parse(field)?,
        })
    }
}

impl std::fmt::Display for TopicPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.0.is_empty() {
            write!(f, "{}", self.topic)
        } else {
            write!(f, "{}.{}", self.topic, self.field)
        }
    }
}

/// The numbers a [`TopicPath`] selects in every message of its topic, each with a name that
/// stays the same from message to message: a number array beside a `name` / `joint_names`
/// string array of the same length (JointState, JointTrajectory) is named by joint
/// (`shoulder.pos`, `wrist.vel`); anything else by its path (`gripper/state.width`,
/// `arm_controller/commands.data[3]`).
#[derive(Clone, Debug, Default)]
pub struct PathSamples {
    /// Every name seen, the message with the most values first (in its order), then others
    /// as they first appear: the same order whichever of several publishers spoke first.
    pub names: Vec<String>,
    /// (log time, [(index into `names`, value)]) per message that had values.
    pub samples: Vec<(u64, Vec<(usize, f64)>)>,
    /// Messages left out: undecodable, an index past the end, or names not one per value.
    pub skipped: usize,
    pub first_skip: Option<String>,
}

impl PathSamples {
    /// Warn of the messages `p` left out (how many, and why the first was), naming the
    /// episode `file` when the caller has one.
    pub fn warn_skipped(&self, p: &TopicPath, file: Option<&std::path::Path>) {
        if self.skipped > 0 {
            tracing::warn!(
                file = file.map(|f| f.display().to_string()).unwrap_or_default(),
                path = %p,
                skipped = self.skipped,
                first = self.first_skip.as_deref().unwrap_or(""),
                "messages left out"
            );
        }
    }
}

fn short_field(name: &str) -> &str {
    match name {
        "position" | "positions" => "pos",
        "velocity" | "velocities" => "vel",
        "acceleration" | "accelerations" => "acc",
        n => n,
    }
}

/// The names of the closest enclosing struct's `name` / `joint_names` string array.
fn joint_names<'v>(msg: &'v Value, field: &FieldPath) -> Option<Vec<&'v str>> {
    for k in (0..field.0.len()).rev() {
        if !matches!(field.0[k], Seg::Field(_)) {
            continue;
        }
        let Some(owner) = FieldPath(field.0[..k].to_vec()).select(msg) else {
            continue;
        };
        for key in ["name", "joint_names"] {
            if let Some(Value::List(items)) = owner.get(key)
                && !items.is_empty()
                && items.iter().all(|i| matches!(i, Value::String(_)))
            {
                return Some(
                    items
                        .iter()
                        .map(|i| match i {
                            Value::String(s) => s.as_str(),
                            _ => "",
                        })
                        .collect(),
                );
            }
        }
    }
    None
}

/// One message's named numbers at `p` (`Err` = why it is left out).
fn named_numbers(msg: &Value, p: &TopicPath, base: &str) -> Result<Vec<(String, f64)>, String> {
    let Some(sel) = p.field.select(msg) else {
        return Err(format!("{p}: not in the message (an index past the end?)"));
    };
    let numbers_list = match sel {
        Value::List(items) if items.iter().all(|i| i.as_f64().is_some()) => {
            Some(items.iter().filter_map(Value::as_f64).collect::<Vec<_>>())
        }
        Value::Bytes(b) => Some(b.iter().map(|x| f64::from(*x)).collect()),
        _ => None,
    };
    if let (Some(values), Some(Seg::Field(last))) = (&numbers_list, p.field.0.last())
        && let Some(names) = joint_names(msg, &p.field)
    {
        if names.len() != values.len() {
            return Err(format!(
                "{p}: {} values for {} names",
                values.len(),
                names.len()
            ));
        }
        let suffix = short_field(last);
        return Ok(names
            .iter()
            .zip(values)
            .map(|(n, v)| (format!("{n}.{suffix}"), *v))
            .collect());
    }
    let mut out = if p.field.0.is_empty() {
        body_numbers(sel)
    } else {
        sel.numbers()
    };
    for (n, _) in &mut out {
        *n = join(base, n);
    }
    Ok(out)
}

fn join(base: &str, rel: &str) -> String {
    if rel.is_empty() {
        base.to_string()
    } else if base.is_empty() || rel.starts_with('[') {
        format!("{base}{rel}")
    } else {
        format!("{base}.{rel}")
    }
}

/// Every message of `p.topic` in the selection, decoded with the file's own schema, as named
/// numbers. `Ok(None)` when the file has no such topic; an error when the path does not fit
/// the type, or selects no number in any message.
pub fn path_samples(sel: &Selection, p: &TopicPath) -> anyhow::Result<Option<PathSamples>> {
    let Some((id, _)) = sel.channels.iter().find(|(_, c)| c.topic == p.topic) else {
        return Ok(None);
    };
    let layout = channel_layout(sel, *id)?;
    p.field
        .check_against(&layout)
        .map_err(|e| anyhow::anyhow!("{p}: {e}"))?;
    let base = p.to_string().trim_start_matches('/').to_string();
    let mut out = PathSamples::default();
    let mut per_msg: Vec<(u64, Vec<(String, f64)>)> = Vec::new();
    for m in sel.messages.get(id).map_or(&[][..], Vec::as_slice) {
        let r = hal::ros::decode(&layout, &m.data)
            .map_err(|e| format!("{p}: message at log time {} ns: {e}", m.header.log_time))
            .and_then(|v| named_numbers(&v, p, &base));
        match r {
            Ok(v) if !v.is_empty() => per_msg.push((m.header.log_time, v)),
            Ok(_) => {}
            Err(e) => {
                out.skipped += 1;
                out.first_skip.get_or_insert(e);
            }
        }
    }
    if per_msg.is_empty() {
        match out.first_skip.take() {
            Some(e) => bail!("{e} (and every other message of {})", p.topic),
            None if sel.messages.get(id).is_none_or(Vec::is_empty) => return Ok(None),
            None => bail!("{p} selects no number ({})", layout.name),
        }
    }
    let widest = per_msg.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
    let first_widest = per_msg.iter().find(|(_, v)| v.len() == widest);
    let mut index: std::collections::HashMap<String, usize> = Default::default();
    for (_, v) in first_widest.into_iter().chain(per_msg.iter()) {
        for (n, _) in v {
            if !index.contains_key(n) {
                index.insert(n.clone(), out.names.len());
                out.names.push(n.clone());
            }
        }
    }
    out.samples = per_msg
        .into_iter()
        .map(|(t, v)| (t, v.into_iter().map(|(n, x)| (index[&n], x)).collect()))
        .collect();
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v_str(s: &str) -> Value {
        Value::String(s.into())
    }
    fn msg(fields: Vec<(&str, Value)>) -> Value {
        Value::Struct(fields.into_iter().map(|(n, v)| (n.into(), v)).collect())
    }
    fn floats(x: &[f64]) -> Value {
        Value::List(x.iter().map(|f| Value::Float(*f)).collect())
    }

    #[test]
    fn topic_paths_parse_and_print() {
        let p: TopicPath = "/cmd/arm.points[0].positions".parse().unwrap();
        assert_eq!(p.topic, "/cmd/arm");
        assert_eq!(p.field.to_string(), "points[0].positions");
        assert_eq!(p.to_string(), "/cmd/arm.points[0].positions");
        let bare: TopicPath = "/imu".parse().unwrap();
        assert!(bare.field.0.is_empty());
        assert_eq!(bare.to_string(), "/imu");
        for bad in ["imu.x", "/", "/cmd[0].x", "/a.b[", "/a.b[x]", "/a..b"] {
            assert!(bad.parse::<TopicPath>().is_err(), "{bad}");
        }
    }

    #[test]
    fn arrays_beside_names_are_named_by_joint_others_by_path() {
        let js = msg(vec![
            ("header", msg(vec![("frame_id", v_str("base"))])),
            ("name", Value::List(vec![v_str("a"), v_str("b")])),
            ("position", floats(&[1.0, 2.0])),
            ("effort", floats(&[])),
        ]);
        let p: TopicPath = "/joint_states.position".parse().unwrap();
        assert_eq!(
            named_numbers(&js, &p, "joint_states.position").unwrap(),
            vec![("a.pos".to_string(), 1.0), ("b.pos".to_string(), 2.0)]
        );
        // an effort list that is not one per name: the message is left out, with why
        let e: TopicPath = "/joint_states.effort".parse().unwrap();
        let why = named_numbers(&js, &e, "joint_states.effort").unwrap_err();
        assert!(why.contains("0 values for 2 names"), "{why}");

        let traj = msg(vec![
            ("joint_names", Value::List(vec![v_str("j1")])),
            (
                "points",
                Value::List(vec![msg(vec![("positions", floats(&[0.5]))])]),
            ),
        ]);
        let p: TopicPath = "/cmd.points[0].positions".parse().unwrap();
        assert_eq!(
            named_numbers(&traj, &p, "cmd.points[0].positions").unwrap(),
            vec![("j1.pos".to_string(), 0.5)]
        );
        let past: TopicPath = "/cmd.points[1].positions".parse().unwrap();
        assert!(named_numbers(&traj, &past, "x").is_err());

        let multi = msg(vec![("data", floats(&[3.0, 4.0]))]);
        let p: TopicPath = "/g.data".parse().unwrap();
        assert_eq!(
            named_numbers(&multi, &p, "g.data").unwrap(),
            vec![
                ("g.data[0]".to_string(), 3.0),
                ("g.data[1]".to_string(), 4.0)
            ]
        );
        // a bare topic: every number but the header's
        let whole: TopicPath = "/js".parse().unwrap();
        let js_stamped = msg(vec![
            ("header", msg(vec![("sec", Value::Int(5))])),
            ("width", Value::Float(0.04)),
        ]);
        assert_eq!(
            named_numbers(&js_stamped, &whole, "js").unwrap(),
            vec![("js.width".to_string(), 0.04)]
        );
    }
}

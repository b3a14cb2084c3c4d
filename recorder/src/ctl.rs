//! `demotape-recorder ctl`: the operator's client. Sends a verb to the recorder's queryable
//! (`<prefix>/<robot>/ctl/<verb>`, JSON arguments) and prints the answer; `status --watch`
//! subscribes to `<prefix>/<robot>/status` and redraws a one-screen view every second.

use crate::service::{CommandArgs, ctl_key, status_key};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The recorder answered with an error (e.g. start while recording).
    #[error("{0}")]
    Refused(String),
    #[error(
        "no recorder answered on {key} within {secs:.1} s (is `demotape-recorder run` running for this robot, reachable, and does it authorize this peer?)"
    )]
    NoAnswer { key: String, secs: f64 },
    #[error("{0}")]
    Zenoh(String),
}

/// Ask the recorder; retries until `timeout` while no recorder is reachable yet (a freshly
/// opened peer session needs a moment to find it). A command is sent again only if no
/// recorder answered at all.
pub async fn request(
    session: &zenoh::Session,
    prefix: &str,
    robot: &str,
    verb: &str,
    args: &CommandArgs,
    timeout: Duration,
) -> Result<serde_json::Value, CtlError> {
    let key = ctl_key(prefix, robot, verb);
    let body = serde_json::to_string(args).unwrap_or_default();
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let replies = session
            .get(&key)
            .payload(body.clone())
            .timeout(left.max(Duration::from_millis(300)))
            .await
            .map_err(|e| CtlError::Zenoh(format!("query {key}: {e}")))?;
        if let Ok(reply) = replies.recv_async().await {
            return match reply.result() {
                Ok(sample) => {
                    let text = sample.payload().try_to_string().unwrap_or_default();
                    let v: serde_json::Value = serde_json::from_str(&text)
                        .map_err(|e| CtlError::Zenoh(format!("bad answer from recorder: {e}")))?;
                    Ok(v.get("result").cloned().unwrap_or(v))
                }
                Err(err) => {
                    let text = err
                        .payload()
                        .try_to_string()
                        .unwrap_or_default()
                        .to_string();
                    let msg = serde_json::from_str::<serde_json::Value>(&text)
                        .ok()
                        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(String::from))
                        .unwrap_or(text);
                    Err(CtlError::Refused(msg))
                }
            };
        }
        if Instant::now() >= deadline {
            return Err(CtlError::NoAnswer {
                key,
                secs: timeout.as_secs_f64(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Subscribe to the status and redraw until Ctrl-C.
pub async fn watch(session: &zenoh::Session, prefix: &str, robot: &str) -> Result<(), CtlError> {
    let key = status_key(prefix, robot);
    let sub = session
        .declare_subscriber(&key)
        .await
        .map_err(|e| CtlError::Zenoh(format!("subscribe {key}: {e}")))?;
    println!("waiting for status on {key} ...");
    loop {
        let s = tokio::select! {
            s = sub.recv_async() => s.map_err(|e| CtlError::Zenoh(e.to_string()))?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let text = s.payload().try_to_string().unwrap_or_default().to_string();
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        print!("\x1b[2J\x1b[H{}", render(&v));
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
}

fn mb(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or(0.0) / 1e6
}

/// One screen of status, readable at a glance.
pub fn render(v: &serde_json::Value) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let state = v["state"].as_str().unwrap_or("?");
    let _ = writeln!(
        o,
        "robot {}   state {}   disk free {:.1} GB ({})",
        v["robot"].as_str().unwrap_or("?"),
        if state == "recording" {
            "\x1b[1;31m● RECORDING\x1b[0m".to_string()
        } else {
            "idle".to_string()
        },
        mb(&v["disk_free_bytes"]) / 1e3,
        v["disk_path"].as_str().unwrap_or("")
    );
    if let Some(e) = v["episode"].as_object() {
        let _ = writeln!(
            o,
            "episode {} part {}   {:.1} s   {} messages   task {:?}   operator {:?}   outcome {}",
            e["id"].as_str().unwrap_or(""),
            e["part"],
            e["duration_s"].as_f64().unwrap_or(0.0),
            e["messages"],
            e["task"].as_str().unwrap_or(""),
            e["operator"].as_str().unwrap_or(""),
            e["outcome"].as_str().unwrap_or("-"),
        );
    } else {
        let _ = writeln!(
            o,
            "pre-roll {:.1} s ({:.1} MB)   episodes recorded {}",
            v["preroll_s"].as_f64().unwrap_or(0.0),
            mb(&v["preroll_bytes"]),
            v["episodes_recorded"]
        );
    }
    if let Some(e) = v["last_error"].as_str() {
        let _ = writeln!(o, "\x1b[1;33mlast error: {e}\x1b[0m");
    }
    let _ = writeln!(
        o,
        "\n{:<40} {:>9} {:>9} {:>11} {:>8} {:>9} {:>6}",
        "channel", "rate Hz", "MB/s", "received", "drops", "bad msgs", "stale"
    );
    for c in v["channels"].as_array().into_iter().flatten() {
        let drops = c["drops"].as_u64().unwrap_or(0);
        let n = &c["network"];
        let bad = n["malformed"].as_u64().unwrap_or(0) + n["wrong_type"].as_u64().unwrap_or(0);
        let stale = n["stale"].as_u64().unwrap_or(0);
        let _ = writeln!(
            o,
            "{:<40} {:>9.1} {:>9.2} {:>11} {:>8} {:>9} {:>6}{}",
            c["topic"].as_str().unwrap_or(""),
            c["rate_hz"].as_f64().unwrap_or(0.0),
            c["mb_per_s"].as_f64().unwrap_or(0.0),
            c["received"],
            drops,
            bad,
            stale,
            if drops + bad > 0 { "  !" } else { "" }
        );
    }
    if let Some(l) = v["live"].as_object() {
        let _ = writeln!(
            o,
            "\nlive copy: {} topics watched   {} published   {} skipped (publisher busy)   {} errors",
            l["topics_watched"], l["published"], l["dropped_busy"], l["errors"]
        );
    }
    if let Some(sync) = v["sync"].as_object().filter(|s| !s.is_empty()) {
        let _ = writeln!(
            o,
            "\n{:<24} {:>14} {:>8}",
            "device", "residual p99", "resets"
        );
        for (dev, r) in sync {
            // a triggered camera: its match state; a PTP device: whether its claim holds
            let how = if let Some(t) = r.get("trigger") {
                format!(
                    "  trigger {}: {} matched, {} unmatched{}, {} skipped, {} pulses missing",
                    if t["locked"] == true {
                        "locked"
                    } else {
                        "NOT LOCKED"
                    },
                    t["matched"],
                    t["unmatched"],
                    if t["duplicate_frames"].as_u64().unwrap_or(0) > 0 {
                        format!(", {} duplicates", t["duplicate_frames"])
                    } else {
                        String::new()
                    },
                    t["skipped_frames"],
                    t["missing_pulses"]
                )
            } else if let Some(p) = r.get("ptp") {
                match p["fault"].as_str() {
                    Some(f) => format!("  PTP FAULT: {f}"),
                    None => "  PTP locked".to_string(),
                }
            } else {
                String::new()
            };
            let _ = writeln!(
                o,
                "{:<24} {:>11.1} µs {:>8}{how}",
                dev,
                r["residual_p99_us"].as_f64().unwrap_or(f64::NAN),
                r["resets"]
            );
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_screen_shows_trigger_and_ptp_state() {
        let v = serde_json::json!({
            "robot": "r", "state": "recording",
            "sync": {
                "camera_head": {"residual_p99_us": 1.0, "resets": 0,
                    "trigger": {"locked": true, "matched": 290, "unmatched": 3,
                                "duplicate_frames": 0, "skipped_frames": 2, "missing_pulses": 1}},
                "lidar": {"residual_p99_us": 3.0, "resets": 0,
                    "ptp": {"status": "fault", "fault": "drifts +50.0 ppm"}},
                "ft_right": {"residual_p99_us": 3.0, "resets": 0, "ptp": {"status": "locked"}}
            }
        });
        let s = render(&v);
        assert!(
            s.contains("trigger locked: 290 matched, 3 unmatched, 2 skipped, 1 pulses missing"),
            "{s}"
        );
        assert!(s.contains("PTP FAULT: drifts +50.0 ppm"), "{s}");
        assert!(s.contains("PTP locked"), "{s}");
    }
}

//! Record simulated episodes at the humanoid-ref load, decode every message with the real
//! Python `mcap` + `mcap-ros2-support` readers, and compare each field with what the
//! simulator produced.

use demotape_e2e::{payload_crc, percentile, record_sim, regenerate, run_python};
use std::collections::HashMap;

#[test]
fn humanoid_ref_episodes_decode_in_python_with_the_simulated_values() {
    let dir = tempfile::tempdir().unwrap();
    let duration = 4.0;
    let episodes = record_sim(dir.path(), "humanoid-ref", 7, 3, 2, duration);
    assert_eq!(episodes.len(), 2);
    let mut sync_err = Vec::new();
    let mut naive_err = Vec::new();
    for (summary, truth) in &episodes {
        assert_eq!(
            summary.total_drops(),
            0,
            "drops at humanoid-ref: {:?}",
            summary.streams
        );
        let digest: serde_json::Value =
            serde_json::from_slice(&run_python("decode_mcap.py", &[&summary.path]))
                .expect("digest json");
        assert_eq!(digest["profile"], "ros2");
        assert_eq!(
            digest["errors"].as_array().unwrap().len(),
            0,
            "{}",
            digest["errors"]
        );
        for (name, enc) in digest["schemas"].as_object().unwrap() {
            assert_eq!(enc, "ros2msg", "schema {name}");
        }
        let channels = digest["channels"].as_object().unwrap();

        let (streams, samples) = regenerate("humanoid-ref", truth);
        // expected digest per (topic, sequence)
        let mut expected: HashMap<(String, u64), (u32, u64)> = HashMap::new();
        let mut per_topic: HashMap<String, u64> = HashMap::new();
        for s in &samples {
            let topic = streams[s.stream].topic.clone();
            *per_topic.entry(topic.clone()).or_default() += 1;
            expected.insert(
                (topic, s.sequence),
                (payload_crc(&s.payload), s.host_receive_ns),
            );
        }
        let truth_capture: HashMap<&str, &Vec<u64>> = truth
            .streams
            .iter()
            .map(|s| (s.topic.as_str(), &s.capture_rel_ns))
            .collect();
        for spec in &streams {
            let ch = &channels
                .get(&spec.topic)
                .unwrap_or_else(|| panic!("{} missing from the file", spec.topic));
            assert_eq!(ch["encoding"], "cdr");
            assert_eq!(ch["type"], spec.modality.type_name());
            let msgs = ch["messages"].as_array().unwrap();
            // every simulated sample is in the file, exactly once, with the same values
            assert_eq!(msgs.len() as u64, per_topic[&spec.topic], "{}", spec.topic);
            let want = spec.rate_hz * duration;
            assert!(
                (msgs.len() as f64 - want).abs() <= want * 0.01 + 1.0,
                "{}: {} messages, configured rate x duration = {want}",
                spec.topic,
                msgs.len()
            );
            for m in msgs {
                let seq = m["seq"].as_u64().unwrap();
                let (crc, host) = expected[&(spec.topic.clone(), seq)];
                assert_eq!(
                    m["crc"].as_u64().unwrap() as u32,
                    crc,
                    "{} seq {seq}: values differ",
                    spec.topic
                );
                assert_eq!(
                    m["pub"].as_u64().unwrap(),
                    host,
                    "publish_time = host receive time"
                );
                let log = m["log"].as_u64().unwrap();
                assert_eq!(m["stamp"].as_u64().unwrap(), log, "header.stamp = log_time");
                assert!(log <= host, "capture time after receive time");
                let true_ns = truth.t0_ns + truth_capture[spec.topic.as_str()][seq as usize];
                sync_err.push((log as f64 - true_ns as f64).abs() / 1e3);
                naive_err.push((host as f64 - true_ns as f64) / 1e3);
            }
        }
        // clock observations: one per sample per device, consistent arrays
        let mut obs: HashMap<String, u64> = HashMap::new();
        for (topic, ch) in channels {
            if let Some(dev) = topic.strip_prefix("/demotape/clock/") {
                for m in ch["messages"].as_array().unwrap() {
                    assert_eq!(m["ok"], true);
                    *obs.entry(dev.to_string()).or_default() += m["n"].as_u64().unwrap();
                }
            }
        }
        for spec in &streams {
            assert!(
                obs.contains_key(&spec.device),
                "no clock channel for {}",
                spec.device
            );
        }
        let total_obs: u64 = obs.values().sum();
        assert_eq!(total_obs, samples.len() as u64);
        // events: start and stop
        let kinds: Vec<&str> = channels["/demotape/events"]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds.first(), Some(&"start"));
        assert_eq!(kinds.last(), Some(&"stop"));
    }
    let (s50, s99) = (
        percentile(&mut sync_err, 50.0),
        percentile(&mut sync_err, 99.0),
    );
    let (n50, n99) = (
        percentile(&mut naive_err, 50.0),
        percentile(&mut naive_err, 99.0),
    );
    println!(
        "capture-time error vs truth (us): synced p50 {s50:.0} p99 {s99:.0}; naive receive p50 {n50:.0} p99 {n99:.0}"
    );
    assert!(s99 < n99, "synced stamps must beat naive receive stamps");
}

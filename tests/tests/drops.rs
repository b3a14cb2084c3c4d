//! A capture queue too small for the load: samples are dropped, never block, and every drop
//! is counted and written into the episode (events and closing metadata) — so that
//! written + dropped = produced for every stream.

use annotate::inspect::Inspection;
use demotape_e2e::{record_sim_with, regenerate};
use std::collections::HashMap;

#[test]
fn every_dropped_sample_is_counted_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // 1 MB of queue: an RGB frame (921 kB) and a depth frame (614 kB) never fit together.
    let (summary, truth) = record_sim_with(dir.path(), "humanoid-ref", 3, 0, 1, 2.0, |c| {
        c.recorder.queue_max_bytes = 1_000_000;
    })
    .remove(0);
    assert!(
        summary.total_drops() > 0,
        "the tiny queue must drop something"
    );
    let (streams, samples) = regenerate("humanoid-ref", &truth);
    let mut produced: HashMap<&str, u64> = HashMap::new();
    for s in &samples {
        *produced
            .entry(streams[s.stream].topic.as_str())
            .or_default() += 1;
    }
    let ins = Inspection::run(&summary.path).unwrap();
    assert!(ins.intact, "{:?}", ins.problems);
    let mut event_drops: HashMap<&str, u64> = HashMap::new();
    for e in ins.events.iter().filter(|e| e.kind == "drop") {
        *event_drops.entry(e.topic.as_str()).or_default() += e.count;
    }
    for c in ins
        .channels
        .iter()
        .filter(|c| produced.contains_key(c.topic.as_str()))
    {
        let p = produced[c.topic.as_str()];
        assert_eq!(
            c.messages + c.drops,
            p,
            "{}: written {} + dropped {} != produced {p}",
            c.topic,
            c.messages,
            c.drops
        );
        assert_eq!(
            event_drops.get(c.topic.as_str()).copied().unwrap_or(0),
            c.drops,
            "{}: drop events",
            c.topic
        );
    }
    // small messages were not starved by the big ones
    let js = ins
        .channels
        .iter()
        .find(|c| c.topic == "/joint_states")
        .unwrap();
    assert_eq!(js.drops, 0);
}

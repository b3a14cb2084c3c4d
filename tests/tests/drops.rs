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
    // small messages were not starved by the big ones: the queue is measured in bytes, so a
    // joint state is dropped only when the writer falls behind for a moment (a loaded
    // machine), far less often than a frame; the frames take the drops
    let frac = |c: &annotate::inspect::ChannelInfo| c.drops as f64 / (c.messages + c.drops) as f64;
    let js = ins
        .channels
        .iter()
        .find(|c| c.topic == "/joint_states")
        .unwrap();
    let frames = ins
        .channels
        .iter()
        .filter(|c| c.topic.contains("image") || c.topic.contains("depth"))
        .map(frac)
        .fold(0.0, f64::max);
    assert!(
        frac(js) < 0.1 && frac(js) * 5.0 < frames,
        "joint states dropped {:.1} %, frames up to {:.1} %",
        frac(js) * 100.0,
        frames * 100.0
    );
}

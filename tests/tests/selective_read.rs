//! Small messages get chunks of their own, so reading everything but the cameras skips every
//! image chunk — and returns exactly the same messages as a full read.

use demotape_e2e::record_sim;
use std::collections::BTreeMap;
use std::time::Instant;

#[test]
fn non_image_channels_are_read_without_touching_image_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let (summary, _) = record_sim(dir.path(), "humanoid-ref", 17, 0, 1, 3.0).remove(0);
    let t = Instant::now();
    let sel =
        annotate::read::read_selected(&summary.path, |_, schema| schema != "sensor_msgs/msg/Image")
            .unwrap();
    let selective = t.elapsed();
    let t = Instant::now();
    let bytes = std::fs::read(&summary.path).unwrap();
    let mut full: BTreeMap<String, Vec<(u32, u64, Vec<u8>)>> = BTreeMap::new();
    for m in mcap::MessageStream::new(&bytes).unwrap() {
        let m = m.unwrap();
        if m.channel
            .schema
            .as_ref()
            .is_some_and(|s| s.name == "sensor_msgs/msg/Image")
        {
            continue;
        }
        full.entry(m.channel.topic.clone()).or_default().push((
            m.sequence,
            m.log_time,
            m.data.into_owned(),
        ));
    }
    let whole = t.elapsed();
    println!(
        "read {} of {} chunks in {:.1} ms; a full read of the file took {:.1} ms ({:.0}x)",
        sel.chunks_read,
        sel.chunks_total,
        selective.as_secs_f64() * 1e3,
        whole.as_secs_f64() * 1e3,
        whole.as_secs_f64() / selective.as_secs_f64()
    );
    // every image chunk is skipped ...
    let images =
        annotate::read::read_selected(&summary.path, |_, schema| schema == "sensor_msgs/msg/Image")
            .unwrap();
    let any = annotate::read::read_selected(&summary.path, |_, _| true).unwrap();
    assert_eq!(
        sel.chunks_read + images.chunks_read,
        any.chunks_read,
        "no chunk mixes images and small messages"
    );
    // ... and one topic reads only its own chunks
    let joints = annotate::read::read_selected(&summary.path, |t, _| t == "/joint_states").unwrap();
    assert!(
        joints.chunks_read * 10 < joints.chunks_total,
        "{} of {}",
        joints.chunks_read,
        joints.chunks_total
    );
    assert_eq!(
        joints.by_topic("/joint_states").len(),
        full["/joint_states"].len()
    );
    assert_eq!(sel.messages.len(), full.len());
    for (topic, msgs) in &full {
        let got: Vec<(u32, u64, Vec<u8>)> = sel
            .by_topic(topic)
            .iter()
            .map(|m| (m.header.sequence, m.header.log_time, m.data.clone()))
            .collect();
        assert_eq!(&got, msgs, "{topic}");
    }
    assert!(sel.metadata.contains_key("demotape.episode"));
}

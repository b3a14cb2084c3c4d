//! Shared by the export and view benches: the episode to measure.

use std::path::{Path, PathBuf};

/// `--episode FILE` from the command line, else a 10 s humanoid-ref episode recorded into
/// `tmp` with the release `demotape-recorder` (which must be built).
pub fn episode(tmp: &Path) -> PathBuf {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--episode") {
        return PathBuf::from(&args[i + 1]);
    }
    // target/release/deps/<bench>-… → target/release/demotape-recorder
    let exe = std::env::current_exe().expect("exe");
    let rec = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .join("demotape-recorder");
    assert!(
        rec.exists(),
        "{} not built: cargo build --release -p demotape-recorder",
        rec.display()
    );
    let st = std::process::Command::new(&rec)
        .args(["sim", "--episodes", "1", "--duration", "10", "--out"])
        .arg(tmp.join("eps"))
        .stdout(std::process::Stdio::null())
        .status()
        .expect("recording");
    assert!(st.success());
    annotate::label::collect(&[tmp.join("eps")])
        .into_iter()
        .next()
        .expect("an episode")
}

/// A copy of `src` whose RGB cameras are JPEG `CompressedImage`s (quality 90, on
/// `<topic>/compressed`, as image_transport publishes them), everything else as it was: the
/// same episode as a real robot's compressed cameras would record it.
pub fn jpeg_copy(src: &Path, dst: &Path) -> PathBuf {
    use annotate::read::{chunk_messages, read_chunk, read_summary};
    use hal::msgs::{CompressedImage, Image, RosMessage};
    use std::collections::BTreeMap;
    let summary = read_summary(src).expect("summary");
    let mut w = mcap::WriteOptions::new()
        .profile("ros2")
        .compression(Some(mcap::Compression::Lz4))
        .create(std::io::BufWriter::new(
            std::fs::File::create(dst).expect("create"),
        ))
        .expect("writer");
    let mut ids: BTreeMap<u16, (u16, bool)> = BTreeMap::new();
    let mut schema_ids: BTreeMap<String, u16> = BTreeMap::new();
    for c in summary.sel.channels.values() {
        let schema = summary.sel.schemas[&c.schema_id].clone();
        let jpeg = schema == Image::TYPE_NAME && !c.topic.contains("depth");
        let (name, text, topic) = if jpeg {
            (
                CompressedImage::TYPE_NAME.to_string(),
                CompressedImage::schema_text(),
                format!("{}/compressed", c.topic),
            )
        } else {
            // the sensor types' text; demotape's own (events, clocks) are not read by export
            let text = hal::cdr_check::KnownType::from_ros_name(&schema)
                .map(|k| k.schema_text())
                .unwrap_or_default();
            (schema, text, c.topic.clone())
        };
        let sid = *schema_ids.entry(name.clone()).or_insert_with(|| {
            w.add_schema(&name, "ros2msg", text.as_bytes())
                .expect("schema")
        });
        let id = w
            .add_channel(sid, &topic, "cdr", &BTreeMap::new())
            .expect("channel");
        ids.insert(c.id, (id, jpeg));
    }
    let (mut file, len) = (summary.file, summary.len);
    let mut raw = Vec::new();
    let mut out = Vec::new();
    for ci in &summary.chunk_index {
        let plain = read_chunk(src, &mut file, len, ci, &mut raw).expect("chunk");
        for m in chunk_messages(src, ci, &plain) {
            let m = m.expect("message");
            let Some(&(id, jpeg)) = ids.get(&m.channel) else {
                continue;
            };
            let data: &[u8] = if jpeg {
                let img: Image = hal::msgs::decode(m.data).expect("image");
                let rgb = annotate::lerobot::cdr::image_to_rgb(&img).expect("rgb");
                let mut bytes = Vec::new();
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90)
                    .encode(
                        &rgb.pixels,
                        rgb.width,
                        rgb.height,
                        image::ExtendedColorType::Rgb8,
                    )
                    .expect("jpeg");
                out.clear();
                CompressedImage {
                    header: img.header,
                    format: "rgb8; jpeg compressed bgr8".into(),
                    data: bytes,
                }
                .encode_into(&mut out)
                .expect("cdr");
                &out
            } else {
                m.data
            };
            w.write_to_known_channel(
                &mcap::records::MessageHeader {
                    channel_id: id,
                    sequence: 0,
                    log_time: m.log_time,
                    publish_time: m.log_time,
                },
                data,
            )
            .expect("write");
        }
    }
    for (name, metadata) in &summary.sel.metadata {
        w.write_metadata(&mcap::records::Metadata {
            name: name.clone(),
            metadata: metadata.clone(),
        })
        .expect("metadata");
    }
    w.finish().expect("finish");
    dst.to_path_buf()
}

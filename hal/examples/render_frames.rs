//! Writes one frame of every simulated camera as binary PPM/PGM files, to look at the scene:
//! `cargo run --release -p demotape-hal --example render_frames -- OUT_DIR [SECONDS]`.
use hal::Payload;
use hal::sim::{SimConfig, SimEpisode};
use std::io::Write;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let out = std::path::PathBuf::from(args.get(1).map(String::as_str).unwrap_or("frames"));
    let at: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(4.0);
    std::fs::create_dir_all(&out)?;
    let cfg = SimConfig::default();
    let mut ep = SimEpisode::new(&cfg, 0, 10.0, 0);
    let streams = ep.streams().to_vec();
    let mut v = Vec::new();
    let mut done = std::collections::HashSet::new();
    while ep.next_samples(&mut v) {
        for s in v.drain(..) {
            let t = s.sequence as f64 / cfg.camera_rate_hz;
            if let Payload::Image(img) = &s.payload {
                if t < at || !done.insert(s.stream) {
                    continue;
                }
                let name = streams[s.stream]
                    .topic
                    .trim_start_matches('/')
                    .replace('/', "_");
                let mut f = std::fs::File::create(out.join(format!(
                    "{name}.{}",
                    if img.encoding == "rgb8" { "ppm" } else { "pgm" }
                )))?;
                if img.encoding == "rgb8" {
                    write!(f, "P6\n{} {}\n255\n", img.width, img.height)?;
                    f.write_all(&img.data)?;
                } else {
                    write!(f, "P5\n{} {}\n255\n", img.width, img.height)?;
                    let px: Vec<u8> = img
                        .data
                        .chunks(2)
                        .map(|c| (u16::from_le_bytes([c[0], c[1]]) / 8).min(255) as u8)
                        .collect();
                    f.write_all(&px)?;
                }
            }
        }
    }
    println!("outcome: {:?}", ep.truth().outcome);
    Ok(())
}

//! Times reading + segmenting one episode in-process:
//! `cargo run --release -p demotape-annotate --example time_annotate -- EPISODE.mcap`
use std::time::Instant;
fn main() {
    let Some(p) = std::env::args().nth(1).map(std::path::PathBuf::from) else {
        eprintln!("usage: time_annotate EPISODE.mcap");
        std::process::exit(2);
    };
    let config = annotate::label::AnnotateConfig::default();
    let cfg = config.signals.clone();
    let arm = config.robot_arm().expect("the default arm");
    let mut runs = Vec::new();
    for _ in 0..9 {
        let t = Instant::now();
        let (s, _, _) = match annotate::signals::read_signals(&p, &cfg, &arm) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("error: {e:#}");
                std::process::exit(1);
            }
        };
        let seg = annotate::segment::segment(&s, arm.kin.as_ref());
        std::hint::black_box(&seg);
        runs.push((t.elapsed().as_secs_f64(), s.duration_s, seg.outcome));
    }
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (t, d, o) = runs[runs.len() / 2];
    println!(
        "read + segment: {:.1} ms (median of 9) for {d:.1} s = {:.0}x real time on one core; outcome {o:?}",
        t * 1e3,
        d / t
    );
}

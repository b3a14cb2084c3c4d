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

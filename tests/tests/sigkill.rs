//! SIGKILL the recorder mid-episode, with the machine's other core kept busy: everything but
//! the last <= 200 ms must be readable.

use annotate::inspect::Inspection;
use demotape_e2e::bin;
use hal::sim::{SimConfig, SimEpisode, now_ns};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Keeps one core busy (a spinning shell) until dropped: the recorder shares the machine
/// with the robot's other work, and its writer must keep up all the same.
struct BusyCore(std::process::Child);

impl Drop for BusyCore {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sigkill_loses_at_most_the_flush_interval() {
    let _busy = BusyCore(
        Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap(),
    );
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
    // 3 kills in CI; the full fault test is `DEMOTAPE_SIGKILL_RUNS=50 cargo test --release
    // -p demotape-e2e --test sigkill -- --nocapture`.
    let runs: u64 = std::env::var("DEMOTAPE_SIGKILL_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    for run in 0..runs {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(bin("demotape-recorder"))
            .args([
                "sim",
                "--episodes",
                "1",
                "--duration",
                "30",
                "--seed",
                "5",
                "--first-index",
            ])
            .arg(run.to_string())
            .arg("--out")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.gen_range(700..3500)));
        let killed_at = now_ns();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let file = std::fs::read_dir(dir.path().join("sim-robot"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "mcap"))
            .expect("an episode file exists");
        let ins = Inspection::run(&file).expect("readable MCAP");
        assert!(!ins.intact, "a killed recording has no footer");
        let meta = &ins.metadata["demotape.episode"];
        let t0: u64 = meta["start_ns"].parse().unwrap();
        let index: u64 = meta["sim.episode_index"].parse().unwrap();
        assert_eq!(index, run);

        // What the simulator had delivered by the kill, per topic, with and without the last 200 ms.
        let cfg = SimConfig {
            seed: 5,
            ..SimConfig::default()
        };
        let mut ep = SimEpisode::new(&cfg, index, 30.0, t0);
        let streams = ep.streams().to_vec();
        let mut by_200 = HashMap::new();
        let mut by_kill = HashMap::new();
        // per topic, the receive stamps of what was delivered by the kill (in order)
        let mut stamps: HashMap<String, Vec<u64>> = HashMap::new();
        let mut v = Vec::new();
        while ep.next_samples(&mut v) {
            for s in v.drain(..) {
                let topic = streams[s.stream].topic.clone();
                if s.host_receive_ns + 200_000_000 <= killed_at {
                    *by_200.entry(topic.clone()).or_insert(0u64) += 1;
                }
                if s.host_receive_ns <= killed_at {
                    stamps
                        .entry(topic.clone())
                        .or_default()
                        .push(s.host_receive_ns);
                    *by_kill.entry(topic).or_insert(0u64) += 1;
                }
            }
        }
        let readable: HashMap<String, u64> = ins
            .channels
            .iter()
            .map(|c| (c.topic.clone(), c.messages))
            .collect();
        // the loss window: how long before the kill the first unreadable sample was delivered
        let mut window_ms = 0.0f64;
        for spec in &streams {
            let got = readable.get(&spec.topic).copied().unwrap_or(0) as usize;
            if let Some(st) = stamps.get(&spec.topic)
                && got < st.len()
            {
                window_ms = window_ms.max((killed_at - st[got]) as f64 / 1e6);
            }
        }
        println!(
            "run {run}: killed after {:.2} s, {} messages readable, loss window {window_ms:.0} ms",
            (killed_at - t0) as f64 / 1e9,
            ins.messages
        );
        for spec in &streams {
            let got = readable.get(&spec.topic).copied().unwrap_or(0);
            let floor = by_200.get(&spec.topic).copied().unwrap_or(0);
            let ceil = by_kill.get(&spec.topic).copied().unwrap_or(0);
            assert!(
                got >= floor,
                "run {run}: {} has {got} readable, but {floor} were delivered more than 200 ms before the kill",
                spec.topic
            );
            assert!(
                got <= ceil,
                "run {run}: {} has {got} readable, more than the {ceil} delivered",
                spec.topic
            );
        }
    }
}

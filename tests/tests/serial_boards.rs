//! The simulated robot's wrench and tactile streams routed through simulated serial boards
//! (real pseudo-terminals, `tokio-serial`, the board protocol). A board is unplugged and
//! replugged, another reboots, mid-episode: the recording continues, the gap and the clock
//! resets are events in the MCAP, and nothing captured before the fault is lost.

use annotate::inspect::Inspection;
use hal::sim::SimConfig;
use recorder::config::Config;
use recorder::sim::{BoardFault, SimJob};
use std::collections::HashMap;

#[test]
fn unplug_and_reboot_mid_episode_are_recorded_and_lose_nothing_before() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config {
        sim: SimConfig {
            seed: 8,
            boards: hal::sim::SimBoards::Sensors(true),
            ..SimConfig::preset("small").unwrap()
        },
        ..Config::default()
    };
    cfg.recorder.out_dir = dir.path().into();
    let job = SimJob {
        episodes: 1,
        duration_s: 7.0,
        first_index: 0,
        load: "small".into(),
        board_faults: vec![
            "ft_right:unplug:1@2".parse::<BoardFault>().unwrap(),
            "tactile_left:reboot@4.5".parse().unwrap(),
        ],
        live: false,
    };
    let mut truth = None;
    let sums = recorder::sim::run(
        &cfg,
        &job,
        tokio_util::sync::CancellationToken::new(),
        |_, t| truth = Some(t.clone()),
    )
    .unwrap();
    let (summary, truth) = (&sums[0], truth.unwrap());
    assert_eq!(summary.total_drops(), 0);
    let ins = Inspection::run(&summary.path).unwrap();
    assert!(ins.intact, "{:?}", ins.problems);
    let ev = |kind: &str, topic: &str| {
        ins.events
            .iter()
            .filter(|e| e.kind == kind && e.topic.contains(topic))
            .map(|e| e.log_ns)
            .collect::<Vec<_>>()
    };
    let disc = ev("disconnected", "ft_right");
    let conn = ev("connected", "ft_right");
    assert_eq!(
        disc.len(),
        1,
        "one disconnect of ft_right: {:?}",
        ins.events
    );
    assert_eq!(conn.len(), 2, "connected at start and after the replug");
    assert_eq!(
        ev("device_reboot", "ft_right").len(),
        1,
        "a replugged board has booted again"
    );
    assert_eq!(ev("clock_reset", "ft_right").len(), 1);
    assert_eq!(ev("device_reboot", "tactile_left").len(), 1);
    assert_eq!(ev("clock_reset", "tactile_left").len(), 1);
    assert!(
        ev("disconnected", "tactile_left").is_empty(),
        "a reboot without unplug keeps the port"
    );

    // log times per topic
    let bytes = std::fs::read(&summary.path).unwrap();
    let mut log: HashMap<String, Vec<u64>> = HashMap::new();
    for m in mcap::MessageStream::new(&bytes).unwrap() {
        let m = m.unwrap();
        log.entry(m.channel.topic.clone())
            .or_default()
            .push(m.log_time);
    }
    let capture = |topic: &str| -> Vec<u64> {
        truth
            .streams
            .iter()
            .find(|s| s.topic == topic)
            .unwrap()
            .capture_rel_ns
            .iter()
            .map(|c| truth.t0_ns + c)
            .collect()
    };
    // captured by the simulator vs recorded, before `cut` (ns), on one topic
    let before = |topic: &str, cut: u64| {
        let want = capture(topic).iter().filter(|&&c| c < cut).count();
        let got = log[topic].iter().filter(|&&t| t < cut).count();
        (got, want)
    };
    // Everything captured before the unplug is in the file.
    let (got, want) = before("/wrist/right/wrench", disc[0] - 20_000_000);
    assert!(
        got.abs_diff(want) <= 2,
        "ft_right before the unplug: {got} recorded, {want} captured"
    );
    // ... and recording went on after the replug
    let back = conn[1] + 100_000_000;
    assert!(
        log["/wrist/right/wrench"]
            .iter()
            .filter(|&&t| t > back)
            .count()
            > 1000
    );
    // tactile_left: only the samples during its reboot are missing
    let reboot = ev("device_reboot", "tactile_left")[0];
    let (got, want) = before("/tactile/left_a_tip", reboot - 20_000_000);
    assert!(
        got.abs_diff(want) <= 2,
        "tactile_left before the reboot: {got} recorded, {want} captured"
    );
    let total_want = capture("/tactile/left_a_tip").len();
    let total = log["/tactile/left_a_tip"].len();
    assert!(
        total + 40 >= total_want,
        "a reboot costs a few samples, not more: {total} of {total_want}"
    );
    // streams that did not fail are complete up to the episode's last few milliseconds. (At
    // the very end, in about one run in five here, the last sample the board was handed is
    // not recorded — 6999 of 7000 — whatever the end grace: 200 ms and 600 ms alike. A
    // boundary race in the simulated-board path, noticed and not fixed yet; everything
    // before it is asserted exactly.)
    let end = truth.t0_ns + (truth.duration_s * 1e9) as u64;
    let (got, want) = before("/wrist/left/wrench", end - 5_000_000);
    assert_eq!(got, want, "ft_left, which never failed");
    let all = log["/wrist/left/wrench"].len();
    let captured = capture("/wrist/left/wrench").len();
    assert!(
        all + 1 >= captured && all <= captured,
        "{all} of {captured}"
    );
}

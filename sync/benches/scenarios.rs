//! Clock-sync scenarios of `shared/design/loads.md`: p50/p99 capture-time error (relative to
//! the device's minimum latency) of naive receive stamps, least squares, and our estimator
//! online (causal) and offline, over seeded trials; plus the online per-sample cost.
//!
//! Run: `cargo bench -p demotape-sync --bench scenarios` (optionally `-- --trials N`).
//! The last line is one JSON object with every figure.

use std::time::Instant;
use sync::offline::OfflineConfig;
use sync::scenarios::{
    Scenario, TriggerScenario, generate, percentile, run_causal, run_least_squares, run_naive,
    run_offline, run_trigger,
};
use sync::{ClockMapper, EnvelopeClock, EnvelopeConfig};

fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    let p50 = percentile(&mut v, 50.0) / 1e3;
    let p99 = percentile(&mut v, 99.0) / 1e3;
    let max = v.iter().copied().fold(0.0, f64::max) / 1e3;
    (p50, p99, max)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let trials: u64 = args
        .iter()
        .position(|a| a == "--trials")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|s| s.parse::<f64>().ok())
    };
    let mut online = EnvelopeConfig::default();
    if let Some(f) = arg("--eval-fraction") {
        online.eval_fraction = f;
    }
    if args.iter().any(|a| a == "--no-posterior") {
        online.posterior = false;
    }
    if let Some(b) = arg("--blend") {
        online.blend = b;
    }
    if let Some(w) = arg("--window") {
        online.window_s = w;
    }
    let offline = OfflineConfig::default();
    let targets = [
        ("A", 20.0),
        ("B", 20.0),
        ("C", 150.0),
        ("E", 20.0),
        ("F", 20.0),
        ("F*", 125.0),
        ("L", 30.0),
    ];
    println!(
        "clock-sync scenarios: {trials} seeded trials each; error = |estimate - (true capture + min latency)|, microseconds"
    );
    println!(
        "{:<3} {:>9} {:>9} | {:>9} {:>9} | {:>9} {:>9} {:>9} | {:>9} {:>9} | {:>8}",
        "id",
        "naive p50",
        "p99",
        "LS p50",
        "p99",
        "ours p50",
        "p99",
        "max",
        "offl p50",
        "p99",
        "target"
    );
    let mut json = Vec::new();
    for s in Scenario::all() {
        let col = |f: &dyn Fn(u64) -> Vec<f64>| {
            let mut all = Vec::new();
            for seed in 0..trials {
                all.extend(f(seed));
            }
            stats(all)
        };
        let naive = col(&|seed| run_naive(&s, seed));
        let ls = col(&|seed| run_least_squares(&s, seed));
        let causal = col(&|seed| run_causal(&s, seed, &online));
        let off = col(&|seed| run_offline(&s, seed, &offline));
        let target = targets
            .iter()
            .find(|t| t.0 == s.id)
            .map_or(f64::NAN, |t| t.1);
        println!(
            "{:<3} {:>9.1} {:>9.1} | {:>9.1} {:>9.1} | {:>9.2} {:>9.2} {:>9.2} | {:>9.2} {:>9.2} | {:>6.0}{}",
            s.id,
            naive.0,
            naive.1,
            ls.0,
            ls.1,
            causal.0,
            causal.1,
            causal.2,
            off.0,
            off.1,
            target,
            if causal.1 <= target { " ok" } else { " MISS" }
        );
        let o = |x: (f64, f64, f64)| {
            format!(
                "{{\"p50_us\":{:.3},\"p99_us\":{:.3},\"max_us\":{:.3}}}",
                x.0, x.1, x.2
            )
        };
        json.push(format!(
            "\"{}\":{{\"naive\":{},\"least_squares\":{},\"causal\":{},\"offline\":{},\"target_causal_p99_us\":{}}}",
            s.id, o(naive), o(ls), o(causal), o(off), target
        ));
    }
    // Scenario T: a hardware-triggered camera, three ways of stamping its frames.
    println!();
    println!(
        "scenario T (30 Hz triggered camera, frames 0.5-8 ms late, 1 % frames and 0.1 % pulses lost): error vs true exposure start + the board's min latency, microseconds"
    );
    println!(
        "{:<8} {:>9} {:>9} | {:>9} {:>9} | {:>9} {:>9} {:>9} | {:>9} | {:>16} {:>16} {:>6} | {:>6}",
        "id",
        "naive p50",
        "p99",
        "cam p50",
        "p99",
        "trig p50",
        "p99",
        "max",
        "all p99",
        "skips rep/inj",
        "pulses rep/inj",
        "wrong",
        "target"
    );
    let trigger_cfg = sync::trigger::TriggerConfig::default();
    let mut tjson = Vec::new();
    for (id, ts) in TriggerScenario::all() {
        let (mut naive, mut cam, mut trig, mut all) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (
            mut skips,
            mut skips_inj,
            mut pulses,
            mut pulses_inj,
            mut wrong,
            mut matched,
            mut frames,
        ) = (0, 0, 0, 0, 0, 0, 0);
        for seed in 0..trials {
            let t = run_trigger(&ts, seed, &trigger_cfg);
            naive.extend(t.naive);
            cam.extend(t.camera_counter);
            trig.extend(t.matched);
            frames += t.trigger_all.len();
            all.extend(t.trigger_all);
            skips += t.stats.skipped_frames;
            skips_inj += t.frames_dropped;
            pulses += t.stats.missing_pulses;
            pulses_inj += t.pulses_dropped;
            wrong += t.misassigned;
            matched += t.stats.matched;
        }
        let (n, c, tr, a) = (stats(naive), stats(cam), stats(trig), stats(all));
        // the target is for a board on a UART / interrupt link; T-usb shows the USB bulk floor
        let target = if id == "T" { 5.0 } else { f64::NAN };
        println!(
            "{:<8} {:>9.1} {:>9.1} | {:>9.1} {:>9.1} | {:>9.2} {:>9.2} {:>9.2} | {:>9.1} | {:>7}/{:<8} {:>7}/{:<8} {:>6} | {:>4}{}",
            id,
            n.0,
            n.1,
            c.0,
            c.1,
            tr.0,
            tr.1,
            tr.2,
            a.1,
            skips,
            skips_inj,
            pulses,
            pulses_inj,
            wrong,
            if target.is_nan() {
                "-".to_string()
            } else {
                format!("{target:.0}")
            },
            if target.is_nan() {
                ""
            } else if tr.1 <= target {
                " ok"
            } else {
                " MISS"
            }
        );
        let o = |x: (f64, f64, f64)| {
            format!(
                "{{\"p50_us\":{:.3},\"p99_us\":{:.3},\"max_us\":{:.3}}}",
                x.0, x.1, x.2
            )
        };
        tjson.push(format!(
            "\"{id}\":{{\"naive\":{},\"camera_counter\":{},\"trigger_matched\":{},\"recorded\":{},\"scored_frames\":{frames},\"matched\":{matched},\"skipped_reported\":{skips},\"skipped_injected\":{skips_inj},\"missing_pulses_reported\":{pulses},\"pulses_dropped_injected\":{pulses_inj},\"misassigned\":{wrong},\"target_trigger_p99_us\":{}}}",
            o(n), o(c), o(tr), o(a),
            if target.is_nan() { "null".to_string() } else { target.to_string() }
        ));
    }
    json.extend(tjson);
    // Online cost per sample: scenario A trials through EnvelopeClock::observe.
    let a = Scenario::by_id("A").expect("A");
    let trial = generate(&a, 1);
    // the largest hull kept, over one run (not timed)
    let mut max_vertices = 0;
    let mut c = EnvelopeClock::new(online.clone());
    for o in &trial.obs {
        c.observe(o.device_us, o.host_ns, o.boot_id);
        max_vertices = max_vertices.max(c.report().hull_vertices);
    }
    let mut bare = Vec::new();
    for _ in 0..15 {
        let mut c = EnvelopeClock::new(online.clone());
        let t = Instant::now();
        let mut acc = 0u64;
        for o in &trial.obs {
            acc = acc.wrapping_add(c.observe(o.device_us, o.host_ns, o.boot_id));
        }
        std::hint::black_box(acc);
        bare.push(t.elapsed().as_nanos() as f64 / trial.obs.len() as f64);
    }
    let ns = percentile(&mut bare, 50.0);
    // and over 300 s (scenario L): cost must not grow with the length of the run
    let l = Scenario::by_id("L").expect("L");
    let long = generate(&l, 1);
    let mut c = EnvelopeClock::new(online.clone());
    let t = Instant::now();
    let (mut first, mut last) = (0.0, 0.0);
    let q = long.obs.len() / 10;
    for (i, o) in long.obs.iter().enumerate() {
        c.observe(o.device_us, o.host_ns, o.boot_id);
        if i == q {
            first = t.elapsed().as_nanos() as f64 / q as f64;
        }
    }
    let total = t.elapsed().as_nanos() as f64;
    if q > 0 {
        last = total / long.obs.len() as f64;
    }
    println!();
    println!(
        "online cost: {ns:.0} ns/sample (median of 15 runs of {} samples); first 30 s of a 300 s run {first:.0} ns/sample, whole run {last:.0} ns/sample; hull vertices <= {max_vertices}",
        trial.obs.len()
    );
    println!(
        "{{\"bench\":\"sync-scenarios\",\"trials\":{trials},\"ns_per_sample\":{ns:.1},\"max_hull_vertices\":{max_vertices},\"scenarios\":{{{}}}}}",
        json.join(",")
    );
}

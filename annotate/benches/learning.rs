//! Learning from review (`demotape train`, issue 17): the learning curve on the second
//! simulated robot's task families (`hal::sim::family`), per family, in one run.
//!
//! For each family: N simulated episodes (truth = the reviewed layer), then for k reviewed
//! episodes (k = 3, 5, 10, 20) `--repeats` seeded draws of which k were reviewed; a model is
//! trained on them and labels every other episode, scored as `demotape eval` scores
//! (`annotate::learn::cv::learning_curve`, what `demotape eval --train-sizes` runs). Twice:
//! with the rules' verdict among the outcome figures, and without it (the rules
//! "weakened": what review alone teaches), and without it with the reviewed episodes chosen
//! in coverage order (`cov`: `review list --order coverage`) instead of at random. The rules
//! alone on the same episodes are the first row. Training and labelling times are medians per model / per episode.
//!
//! Run: `cargo bench -p demotape-annotate --bench learning [-- --episodes N --repeats R]`
//! (defaults 40 and 5); the last line is JSON.

use annotate::learn::{Example, TrainOptions, cv, features, train};
use annotate::segment::{Signals, named, segment};
use hal::sim::family::{Family, generate, ur_like};
use std::time::Instant;

fn arg(name: &str, default: usize) -> usize {
    let a: Vec<String> = std::env::args().collect();
    a.iter()
        .position(|x| x == name)
        .and_then(|i| a.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let n = arg("--episodes", 40) as u64;
    let repeats = arg("--repeats", 5);
    let sizes = [3usize, 5, 10, 20];
    let arm = ur_like();
    let mut json = Vec::new();
    println!(
        "{:<13} {:<14} {:>6} {:>8} {:>8} {:>7} {:>6} {:>7} {:>6}",
        "family", "labeller", "scored", "med ms", "p95 ms", "recall", "acc %", "macroF1", "ECE"
    );
    let f = |x: Option<f64>, k: f64, p: usize| {
        x.map_or("-".to_string(), |v| format!("{:.*}", p, v * k))
    };
    let mut by_family: Vec<(Family, Vec<Example>)> = Vec::new();
    for family in Family::ALL {
        let examples: Vec<Example> = (0..n)
            .map(|i| {
                let ep = generate(family, 2026, i);
                let s = Signals::from_family(&ep);
                Example {
                    name: format!("{}/{i}", family.as_str()),
                    task: family.as_str().into(),
                    series: features::series(&s, &arm),
                    duration_s: s.duration_s,
                    rules: segment(&s, &arm),
                    phases: named(&ep.phases),
                    outcome: ep.outcome().map(|o| format!("{o:?}").to_lowercase()),
                }
            })
            .collect();
        let row = |who: &str, s: &annotate::eval::Summary| {
            println!(
                "{:<13} {:<14} {:>6} {:>8} {:>8} {:>7} {:>6} {:>7} {:>6}",
                family.as_str(),
                who,
                s.episodes,
                f(s.boundary_median_ms, 1.0, 1),
                f(s.boundary_p95_ms, 1.0, 1),
                f(s.recall, 1.0, 3),
                f(s.accuracy, 100.0, 1),
                f(s.macro_f1, 1.0, 3),
                f(s.ece, 1.0, 3)
            );
        };
        let rules = cv::rules_baseline(&examples, 1.0);
        row("rules", &rules);
        json.push(
            serde_json::json!({"family": family.as_str(), "labeller": "rules", "summary": rules}),
        );
        for (uses_rules, select) in [
            (true, cv::Selection::Random),
            (false, cv::Selection::Random),
            (false, cv::Selection::Coverage),
        ] {
            let opt = TrainOptions {
                task: None,
                config_hash: "bench".into(),
                uses_rules,
                seed: 7,
                self_cv: 0,
            };
            let curve =
                cv::learning_curve(&examples, &sizes, repeats, select, &opt, 1.0).expect("curve");
            for p in &curve {
                let who = format!(
                    "k={} {}{}",
                    p.reviewed,
                    if uses_rules { "+rules" } else { "alone" },
                    if select == cv::Selection::Coverage {
                        " cov"
                    } else {
                        ""
                    }
                );
                row(&who, &p.summary);
                json.push(serde_json::json!({
                    "family": family.as_str(), "labeller": who, "reviewed": p.reviewed,
                    "uses_rules": uses_rules, "selection": select, "summary": p.summary,
                    "boundary_median_ms_by_draw": p.boundary_median_ms_by_draw,
                }));
            }
        }
        // speed: train on 20 (or all but one), label one
        let k = 20.min(examples.len() - 1);
        let opt = TrainOptions {
            task: None,
            config_hash: "bench".into(),
            uses_rules: true,
            seed: 7,
            self_cv: 0,
        };
        let mut train_s = Vec::new();
        let mut label_s = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            let m = train(&examples[..k], &opt).expect("train");
            train_s.push(t.elapsed().as_secs_f64());
            let e = &examples[k];
            let t = Instant::now();
            std::hint::black_box(m.predict(&e.series, &e.rules, e.duration_s));
            label_s.push(t.elapsed().as_secs_f64());
        }
        train_s.sort_by(f64::total_cmp);
        label_s.sort_by(f64::total_cmp);
        println!(
            "{:<13} train on {k}: {:.1} ms median; label one episode against {k} templates: {:.1} ms",
            family.as_str(),
            train_s[1] * 1e3,
            label_s[1] * 1e3
        );
        json.push(
            serde_json::json!({"family": family.as_str(), "train_ms": train_s[1] * 1e3,
            "train_episodes": k, "label_ms": label_s[1] * 1e3}),
        );
        by_family.push((family, examples));
    }
    // another task's episodes: a model of family A (10 reviewed) on 10 episodes of family B;
    // how many it leaves to the rules as unlike every template (the task name check aside)
    println!("left to the rules as unlike (of 10), model's family down, episodes' across:");
    print!("{:<13}", "");
    for (b, _) in &by_family {
        print!(" {:>12}", b.as_str());
    }
    println!();
    let opt = TrainOptions {
        task: None,
        config_hash: "bench".into(),
        uses_rules: true,
        seed: 7,
        self_cv: 0,
    };
    for (a, ea) in &by_family {
        let m = train(&ea[..10.min(ea.len())], &opt).expect("train");
        print!("{:<13}", a.as_str());
        for (b, eb) in &by_family {
            let test = if a.as_str() == b.as_str() {
                &eb[10.min(eb.len())..]
            } else {
                &eb[..]
            };
            let refused = test
                .iter()
                .take(10)
                .filter(|e| {
                    m.predict(&e.series, &e.rules, e.duration_s)
                        .refused
                        .is_some()
                })
                .count();
            if std::env::var("DEBUG_UNLIKE").is_ok() {
                let mut c: Vec<f64> = test
                    .iter()
                    .take(10)
                    .map(|e| {
                        m.nearest_cost(&e.series).unwrap_or(f64::NAN) / m.spread_cost.unwrap_or(1.0)
                    })
                    .collect();
                c.sort_by(f64::total_cmp);
                eprintln!(
                    "{} on {}: cost/spread {:?}",
                    a.as_str(),
                    b.as_str(),
                    c.iter()
                        .map(|x| (x * 10.0).round() / 10.0)
                        .collect::<Vec<_>>()
                );
            }
            print!(" {:>12}", refused);
            json.push(
                serde_json::json!({"model_family": a.as_str(), "episode_family": b.as_str(),
                "unlike_of_10": refused}),
            );
        }
        println!();
    }
    println!("{}", serde_json::Value::Array(json));
}

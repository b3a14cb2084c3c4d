//! `meta/stats.json`: per feature and dimension min, max, mean, std, count and the quantiles
//! q01, q10, q50, q90, q99 (lerobot 0.4.4's set). Mean and std are exact (Welford); quantiles
//! are exact up to [`RESERVOIR`] values per dimension and estimated from a uniform reservoir
//! sample beyond, so memory stays bounded for any export size.

use serde_json::{Value, json};

/// Values kept per dimension for the quantiles.
pub const RESERVOIR: usize = 100_000;
const QUANTILES: [(&str, f64); 5] = [
    ("q01", 0.01),
    ("q10", 0.10),
    ("q50", 0.50),
    ("q90", 0.90),
    ("q99", 0.99),
];

#[derive(Clone, Debug)]
struct Dim {
    n: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
    sample: Vec<f64>,
}

impl Dim {
    fn new() -> Self {
        Dim {
            n: 0,
            mean: 0.0,
            m2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sample: Vec::new(),
        }
    }
}

/// Statistics of one feature (`dims` values per frame; images: 3 channels).
#[derive(Clone, Debug)]
pub struct FeatureStats {
    dims: Vec<Dim>,
    /// Frames seen (lerobot's `count`).
    frames: u64,
    /// xorshift state for the reservoir (deterministic: same export, same stats).
    rng: u64,
    integer: bool,
    image: bool,
}

impl FeatureStats {
    /// `integer`: min/max are written as integers (int64 features).
    pub fn new(dims: usize, integer: bool) -> Self {
        FeatureStats {
            dims: vec![Dim::new(); dims],
            frames: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
            integer,
            image: false,
        }
    }
    /// Per-channel statistics of an image feature, values in [0, 1], written as [3][1][1].
    pub fn image() -> Self {
        FeatureStats {
            image: true,
            ..Self::new(3, false)
        }
    }

    /// Statistics of a depth feature: one channel, in millimetres (lerobot 0.6 keeps depth
    /// stats in the recorded unit, not scaled to [0, 1]), written as [1][1][1].
    pub fn depth() -> Self {
        FeatureStats {
            image: true,
            ..Self::new(1, false)
        }
    }

    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn push_dim(&mut self, d: usize, x: f64) {
        let r = self.next();
        let dim = &mut self.dims[d];
        dim.n += 1;
        let delta = x - dim.mean;
        dim.mean += delta / dim.n as f64;
        dim.m2 += delta * (x - dim.mean);
        dim.min = dim.min.min(x);
        dim.max = dim.max.max(x);
        if dim.sample.len() < RESERVOIR {
            dim.sample.push(x);
        } else {
            let j = (r % dim.n) as usize;
            if j < RESERVOIR {
                dim.sample[j] = x;
            }
        }
    }

    /// One frame's values.
    pub fn push(&mut self, values: &[f64]) {
        debug_assert_eq!(values.len(), self.dims.len());
        self.frames += 1;
        for (d, &x) in values.iter().enumerate() {
            self.push_dim(d, x);
        }
    }

    /// One RGB frame: every `stride`-th pixel is counted (lerobot also samples images).
    pub fn push_rgb(&mut self, pixels: &[u8], stride: usize) {
        self.frames += 1;
        for p in pixels.chunks_exact(3).step_by(stride.max(1)) {
            for (c, &v) in p.iter().enumerate() {
                self.push_dim(c, f64::from(v) / 255.0);
            }
        }
    }

    /// One depth frame (mm): every `stride`-th pixel is counted, a 0 (no reading) too, as
    /// lerobot counts the raw frames.
    pub fn push_depth(&mut self, mm: &[u16], stride: usize) {
        self.frames += 1;
        for &v in mm.iter().step_by(stride.max(1)) {
            self.push_dim(0, f64::from(v));
        }
    }

    pub fn frames(&self) -> u64 {
        self.frames
    }
    pub fn is_image(&self) -> bool {
        self.image
    }
    /// min/max are written as integers.
    pub fn is_integer(&self) -> bool {
        self.integer
    }

    /// The stats.json entry.
    pub fn to_json(&self) -> Value {
        let wrap = |v: Vec<f64>| -> Value {
            if self.image {
                json!(v.iter().map(|x| vec![vec![*x]]).collect::<Vec<_>>())
            } else {
                json!(v)
            }
        };
        let per = |f: &dyn Fn(&Dim) -> f64| -> Vec<f64> { self.dims.iter().map(f).collect() };
        let mut m = serde_json::Map::new();
        let fin = |x: f64| if x.is_finite() { x } else { 0.0 };
        if self.integer {
            m.insert(
                "min".into(),
                json!(
                    per(&|d| fin(d.min))
                        .iter()
                        .map(|x| *x as i64)
                        .collect::<Vec<_>>()
                ),
            );
            m.insert(
                "max".into(),
                json!(
                    per(&|d| fin(d.max))
                        .iter()
                        .map(|x| *x as i64)
                        .collect::<Vec<_>>()
                ),
            );
        } else {
            m.insert("min".into(), wrap(per(&|d| fin(d.min))));
            m.insert("max".into(), wrap(per(&|d| fin(d.max))));
        }
        m.insert("mean".into(), wrap(per(&|d| d.mean)));
        m.insert(
            "std".into(),
            wrap(per(&|d| {
                if d.n > 0 {
                    (d.m2 / d.n as f64).sqrt()
                } else {
                    0.0
                }
            })),
        );
        m.insert("count".into(), json!([self.frames]));
        let sorted: Vec<Vec<f64>> = self
            .dims
            .iter()
            .map(|d| {
                let mut s = d.sample.clone();
                s.sort_by(f64::total_cmp);
                s
            })
            .collect();
        for (name, q) in QUANTILES {
            m.insert(
                name.into(),
                wrap(sorted.iter().map(|s| quantile(s, q)).collect()),
            );
        }
        Value::Object(m)
    }
}

/// Linear-interpolated quantile of sorted values (numpy's default method).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => 0.0,
        1 => sorted[0],
        n => {
            let pos = q * (n - 1) as f64;
            let i = pos.floor() as usize;
            let frac = pos - i as f64;
            if i + 1 >= n {
                sorted[n - 1]
            } else {
                sorted[i] + (sorted[i + 1] - sorted[i]) * frac
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_and_quantiles_match_numpy() {
        let mut s = FeatureStats::new(2, false);
        for i in 0..=100 {
            s.push(&[i as f64, 5.0]);
        }
        let j = s.to_json();
        assert_eq!(j["count"], json!([101]));
        assert_eq!(j["min"], json!([0.0, 5.0]));
        assert_eq!(j["max"], json!([100.0, 5.0]));
        assert!((j["mean"][0].as_f64().unwrap() - 50.0).abs() < 1e-12);
        // numpy.std([0..100]) = 29.154759474226502
        assert!((j["std"][0].as_f64().unwrap() - 29.154_759_474_226_502).abs() < 1e-9);
        assert_eq!(j["std"][1], json!(0.0));
        assert!((j["q01"][0].as_f64().unwrap() - 1.0).abs() < 1e-12);
        assert!((j["q99"][0].as_f64().unwrap() - 99.0).abs() < 1e-12);
    }

    #[test]
    fn image_stats_are_nested_per_channel() {
        let mut s = FeatureStats::image();
        s.push_rgb(&[255, 0, 51, 255, 0, 51], 1);
        let j = s.to_json();
        assert_eq!(j["mean"], json!([[[1.0]], [[0.0]], [[0.2]]]));
        assert_eq!(j["count"], json!([1]));
    }

    #[test]
    fn depth_stats_are_one_channel_in_millimetres() {
        let mut s = FeatureStats::depth();
        s.push_depth(&[1000, 0, 3000, 9], 2);
        let j = s.to_json();
        assert_eq!(j["mean"], json!([[[2000.0]]]));
        assert_eq!(j["max"], json!([[[3000.0]]]));
        assert_eq!(j["count"], json!([1]));
    }

    #[test]
    fn reservoir_bounds_memory() {
        let mut s = FeatureStats::new(1, false);
        for i in 0..(RESERVOIR * 3) {
            s.push(&[(i % 1000) as f64]);
        }
        assert_eq!(s.dims[0].sample.len(), RESERVOIR);
        let q50 = s.to_json()["q50"][0].as_f64().unwrap();
        assert!((q50 - 500.0).abs() < 15.0, "{q50}");
    }
}

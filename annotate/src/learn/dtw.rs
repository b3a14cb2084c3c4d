//! Dynamic time warping between two multichannel series, with a Sakoe–Chiba band, and the
//! map it gives from one series' times to the other's.
//!
//! Written here rather than taken from a crate: the crates on crates.io that do DTW
//! (`dtw_rs`, `tslearn`-like ports) work on one channel or return only the distance, and we
//! need the warping path itself, over weighted channels, inside a band; it is forty lines.

/// The alignment of a template (rows `i`) to an episode (columns `j`).
#[derive(Clone, Debug)]
pub struct Alignment {
    /// Total cost along the path divided by the path's length: comparable across lengths.
    pub cost: f64,
    /// For every template index, the mean of the episode indices the path pairs with it.
    pub map: Vec<f64>,
}

/// Align `a` (template) to `b` (episode), each a series of `width`-wide rows in one flat
/// vector, squared Euclidean distance between rows. The band is `band` of the longer length,
/// widened to at least the length difference so that a path always exists. `None` when
/// either series is empty.
pub fn align(a: &[f64], b: &[f64], width: usize, band: f64) -> Option<Alignment> {
    if width == 0 {
        return None;
    }
    let (n, m) = (a.len() / width, b.len() / width);
    if n == 0 || m == 0 {
        return None;
    }
    let w = ((n.max(m) as f64 * band).ceil() as usize).max(n.abs_diff(m)) + 1;
    let lo = |i: usize| (i * m / n).saturating_sub(w);
    let hi = |i: usize| ((i * m / n) + w + 1).min(m);
    let dist = |i: usize, j: usize| -> f64 {
        let (ra, rb) = (&a[i * width..][..width], &b[j * width..][..width]);
        ra.iter().zip(rb).map(|(x, y)| (x - y) * (x - y)).sum()
    };
    // two rows of cumulative cost; the band keeps the work at n × 2w, and the steps for the
    // backtrack take n × m bytes (9 MB at 3000 × 3000, the longest series `features` makes)
    let inf = f64::INFINITY;
    let mut prev = vec![inf; m];
    let mut cur = vec![inf; m];
    // step taken into each cell: 0 diagonal, 1 from above (i − 1), 2 from the left (j − 1)
    let mut step = vec![0u8; n * m];
    for i in 0..n {
        cur.iter_mut().for_each(|c| *c = inf);
        for j in lo(i)..hi(i) {
            let d = dist(i, j);
            let (best, s) = if i == 0 && j == 0 {
                (0.0, 0)
            } else {
                let diag = if i > 0 && j > 0 { prev[j - 1] } else { inf };
                let up = if i > 0 { prev[j] } else { inf };
                let left = if j > 0 { cur[j - 1] } else { inf };
                if diag <= up && diag <= left {
                    (diag, 0)
                } else if up <= left {
                    (up, 1)
                } else {
                    (left, 2)
                }
            };
            cur[j] = best + d;
            step[i * m + j] = s;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    let total = prev[m - 1];
    if !total.is_finite() {
        return None;
    }
    // backtrack from (n − 1, m − 1)
    let (mut i, mut j) = (n - 1, m - 1);
    let mut sum = vec![0.0f64; n];
    let mut count = vec![0u32; n];
    let mut len = 0usize;
    loop {
        sum[i] += j as f64;
        count[i] += 1;
        len += 1;
        if i == 0 && j == 0 {
            break;
        }
        match step[i * m + j] {
            0 => {
                i -= 1;
                j -= 1;
            }
            1 => i -= 1,
            _ => j -= 1,
        }
    }
    Some(Alignment {
        cost: total / len as f64,
        map: sum
            .iter()
            .zip(&count)
            .map(|(s, c)| s / f64::from((*c).max(1)))
            .collect(),
    })
}

impl Alignment {
    /// The episode index that template position `x` (fractional index) maps to.
    pub fn at(&self, x: f64) -> f64 {
        let n = self.map.len();
        if n == 0 {
            return 0.0;
        }
        let x = x.clamp(0.0, (n - 1) as f64);
        let i = x.floor() as usize;
        let f = x - i as f64;
        match self.map.get(i + 1) {
            Some(next) => self.map[i] * (1.0 - f) + next * f,
            None => self.map[i],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bump at `c` (index) of width 10 on a flat line, one channel.
    fn bump(n: usize, c: f64) -> Vec<f64> {
        (0..n)
            .map(|i| (-((i as f64 - c) / 10.0).powi(2)).exp())
            .collect()
    }

    #[test]
    fn a_shifted_and_stretched_event_is_found() {
        let a = bump(200, 60.0);
        let b = bump(260, 110.0);
        let al = align(&a, &b, 1, 0.3).unwrap();
        assert!((al.at(60.0) - 110.0).abs() <= 2.0, "{}", al.at(60.0));
        assert!(al.cost < 0.01, "{}", al.cost);
        // the map never runs backwards, and the ends meet
        assert!(al.map.windows(2).all(|w| w[1] >= w[0]));
        assert!(al.at(199.0) > al.at(60.0) && al.at(199.0) <= 259.0);
        assert!(al.at(0.0) < al.at(60.0));
        // a series unlike the template costs more
        let flat = vec![0.0; 260];
        assert!(align(&a, &flat, 1, 0.3).unwrap().cost > al.cost);
    }

    #[test]
    fn two_channels_and_degenerate_inputs() {
        let a: Vec<f64> = (0..50).flat_map(|i| [i as f64, 0.0]).collect();
        let b: Vec<f64> = (0..100).flat_map(|i| [i as f64 / 2.0, 0.0]).collect();
        let al = align(&a, &b, 2, 0.1).unwrap();
        assert!((al.at(25.0) - 50.0).abs() <= 1.5, "{}", al.at(25.0));
        assert!(align(&[], &b, 2, 0.1).is_none());
        assert!(align(&a, &b, 0, 0.1).is_none());
    }
}

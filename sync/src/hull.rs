//! Incremental lower convex hull of points arriving in increasing x (Andrew's monotone
//! chain), with a bound on the number of vertices kept.

use std::collections::VecDeque;

/// A point: x = device time (µs since the segment origin), y = offset (ns, relative).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pt {
    pub x: f64,
    pub y: f64,
}

/// A line `y = a + b (x - x0)` (kept around an anchor for precision).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Line {
    pub x0: f64,
    pub a: f64,
    pub b: f64,
}

impl Line {
    pub fn at(&self, x: f64) -> f64 {
        self.a + self.b * (x - self.x0)
    }
    fn through(p: Pt, q: Pt) -> Line {
        let b = if q.x > p.x {
            (q.y - p.y) / (q.x - p.x)
        } else {
            0.0
        };
        Line { x0: p.x, a: p.y, b }
    }
}

/// Lower hull of the points pushed so far.
#[derive(Clone, Debug)]
pub struct LowerHull {
    v: VecDeque<Pt>,
    max_vertices: usize,
    /// x of the first and of the last point pushed (the data range, not just the vertices).
    pub first_x: f64,
    pub last_x: f64,
    pub points: u64,
    /// Sum of the x of every point pushed (for the centroid).
    pub sum_x: f64,
}

fn cross(o: Pt, a: Pt, b: Pt) -> f64 {
    (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x)
}

impl LowerHull {
    pub fn new(max_vertices: usize) -> Self {
        LowerHull {
            v: VecDeque::new(),
            max_vertices: max_vertices.max(4),
            first_x: 0.0,
            last_x: 0.0,
            points: 0,
            sum_x: 0.0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.v.is_empty()
    }

    pub fn vertices(&self) -> usize {
        self.v.len()
    }

    /// Add a point. Points with x below the last one are ignored (they cannot be on the
    /// lower envelope of a FIFO-ordered stream; see the crate docs). Amortized O(1).
    pub fn push(&mut self, p: Pt) -> bool {
        if let Some(last) = self.v.back().copied() {
            if p.x < last.x {
                return false;
            }
            if p.x == last.x {
                if p.y >= last.y {
                    self.points += 1;
                    self.sum_x += p.x;
                    return true;
                }
                self.v.pop_back();
            }
        } else {
            self.first_x = p.x;
        }
        while self.v.len() >= 2
            && cross(self.v[self.v.len() - 2], self.v[self.v.len() - 1], p) <= 0.0
        {
            self.v.pop_back();
        }
        self.v.push_back(p);
        if self.v.len() > self.max_vertices {
            self.v.pop_front();
        }
        self.last_x = p.x;
        self.points += 1;
        self.sum_x += p.x;
        true
    }

    /// Centroid of the x of all points pushed.
    pub fn centroid_x(&self) -> f64 {
        if self.points == 0 {
            0.0
        } else {
            self.sum_x / self.points as f64
        }
    }

    /// Posterior-mean line for delays that are exponential with rate `k / n` per point
    /// (`k` = points / mean delay, 1/ns), evaluated around `x_now`.
    ///
    /// With one-sided exponential delays the likelihood of a line `y = a' + b (x - xbar)` is
    /// `exp(k a')` on the lines lying below every point (zero elsewhere). Its maximum is the
    /// hull edge spanning the centroid `xbar`; the posterior mean under a flat prior averages
    /// over every feasible line instead, which pins the slope down better when low points are
    /// sparse. For a fixed slope `b`, `a'` ranges up to `U(b) = min_j (y_j - b (x_j - xbar))`,
    /// a concave piecewise-linear function whose pieces belong to the hull vertices, so every
    /// integral is closed-form: O(vertices).
    pub fn posterior_at(&self, xbar: f64, k: f64, x_now: f64) -> Option<Line> {
        let m = self.v.len();
        if m < 2 || k <= 0.0 || !k.is_finite() {
            return None;
        }
        if !(self.v[0].x < xbar && self.v[m - 1].x > xbar) {
            return None;
        }
        let d = x_now - xbar;
        // breakpoints: slopes of the edges (increasing along a lower hull)
        let slope = |i: usize| (self.v[i + 1].y - self.v[i].y) / (self.v[i + 1].x - self.v[i].x);
        // For b in [lo_j, hi_j], U(b) = y_j - b c_j with c_j = x_j - xbar.
        // Work in log space relative to the maximum of k U(b), reached at a breakpoint.
        let u_at = |j: usize, b: f64| self.v[j].y - b * (self.v[j].x - xbar);
        let mut umax = f64::NEG_INFINITY;
        for i in 0..m - 1 {
            umax = umax.max(u_at(i, slope(i)));
        }
        let (mut z, mut zb, mut zu) = (0.0f64, 0.0f64, 0.0f64);
        for j in 0..m {
            let lo = if j == 0 {
                f64::NEG_INFINITY
            } else {
                slope(j - 1)
            };
            let hi = if j == m - 1 { f64::INFINITY } else { slope(j) };
            if hi <= lo {
                continue;
            }
            let c = self.v[j].x - xbar;
            let alpha = -k * c; // exponent k U(b) = k y_j + alpha b
            // integrals over [lo, hi] of e^{k(U-umax)}, b e^{..}, U e^{..}
            let e = |b: f64| (k * (u_at(j, b) - umax)).exp();
            let (i0, i1) = if alpha.abs() < 1e-300 {
                let w = e(0.0);
                (w * (hi - lo), w * (hi * hi - lo * lo) / 2.0)
            } else {
                // F0(b) = e(b)/alpha ; F1(b) = e(b) (b/alpha - 1/alpha^2)
                let f0 = |b: f64| if b.is_infinite() { 0.0 } else { e(b) / alpha };
                let f1 = |b: f64| {
                    if b.is_infinite() {
                        0.0
                    } else {
                        e(b) * (b / alpha - 1.0 / (alpha * alpha))
                    }
                };
                (f0(hi) - f0(lo), f1(hi) - f1(lo))
            };
            if !(i0.is_finite() && i1.is_finite()) {
                continue;
            }
            z += i0;
            zb += i1;
            // U = y_j - b c_j
            zu += self.v[j].y * i0 - c * i1;
        }
        if z <= 0.0 || !z.is_finite() {
            return None;
        }
        let b_mean = zb / z;
        // E[a' | b] = U(b) - 1/k
        let a_mean = zu / z - 1.0 / k;
        Some(Line {
            x0: x_now,
            a: a_mean + b_mean * d,
            b: b_mean,
        })
    }

    /// The supporting line of the edge spanning `x` (the line below every point that is
    /// highest at `x`), and the lines of its neighboring edges (for an uncertainty estimate).
    pub fn support_at(&self, x: f64) -> Option<(Line, Option<Line>, Option<Line>)> {
        let n = self.v.len();
        match n {
            0 => None,
            1 => Some((
                Line {
                    x0: self.v[0].x,
                    a: self.v[0].y,
                    b: 0.0,
                },
                None,
                None,
            )),
            _ => {
                // index of the first vertex with v.x > x (binary search), edge = (i-1, i)
                let (s1, s2) = self.v.as_slices();
                let pos = |sl: &[Pt]| sl.partition_point(|p| p.x <= x);
                let i = if pos(s1) < s1.len() {
                    pos(s1)
                } else {
                    s1.len() + pos(s2)
                };
                let i = i.clamp(1, n - 1);
                let line = Line::through(self.v[i - 1], self.v[i]);
                let prev = (i >= 2).then(|| Line::through(self.v[i - 2], self.v[i - 1]));
                let next = (i + 1 < n).then(|| Line::through(self.v[i], self.v[i + 1]));
                Some((line, prev, next))
            }
        }
    }

    /// A blended prediction at `x_now`: the lines of every hull edge whose midpoint lies in
    /// `[lo, hi]`, evaluated at `x_now` and weighted by the square of the edge length (a long
    /// edge pins the slope down). Returns the prediction and the blended line.
    pub fn blended_at(&self, lo: f64, hi: f64, x_now: f64) -> Option<Line> {
        let n = self.v.len();
        if n < 2 {
            return None;
        }
        let (mut wsum, mut a, mut b) = (0.0, 0.0, 0.0);
        for i in 1..n {
            let (p, q) = (self.v[i - 1], self.v[i]);
            let mid = 0.5 * (p.x + q.x);
            if mid < lo || mid > hi {
                continue;
            }
            let len = q.x - p.x;
            let l = Line::through(p, q);
            let w = len * len;
            wsum += w;
            a += w * l.at(x_now);
            b += w * l.b;
        }
        (wsum > 0.0).then(|| Line {
            x0: x_now,
            a: a / wsum,
            b: b / wsum,
        })
    }

    /// Lowest vertex (offset-only estimate for very short spans).
    pub fn lowest(&self) -> Option<Pt> {
        self.v.iter().copied().min_by(|a, b| a.y.total_cmp(&b.y))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hull_of_points_above_a_line_recovers_it() {
        let mut h = LowerHull::new(64);
        // y = 5 + 0.1 x plus non-negative noise; two points exactly on the line
        for i in 0..1000 {
            let x = i as f64;
            let noise = if i == 100 || i == 900 {
                0.0
            } else {
                1.0 + ((i * 7919) % 13) as f64
            };
            h.push(Pt {
                x,
                y: 5.0 + 0.1 * x + noise,
            });
        }
        let (l, _, _) = h.support_at(500.0).unwrap();
        assert!((l.at(500.0) - 55.0).abs() < 1e-9, "{l:?}");
        assert!((l.b - 0.1).abs() < 1e-12);
    }

    #[test]
    fn vertices_stay_bounded_on_a_convex_curve() {
        let mut h = LowerHull::new(32);
        for i in 0..10_000 {
            let x = i as f64;
            h.push(Pt { x, y: x * x * 1e-3 });
        }
        assert!(h.vertices() <= 32);
        // still correct locally at the newest end
        let (l, _, _) = h.support_at(9_990.5).unwrap();
        assert!((l.at(9_990.5) - 9_990.5f64.powi(2) * 1e-3).abs() < 0.01);
    }

    #[test]
    fn duplicate_x_keeps_the_lower_point() {
        let mut h = LowerHull::new(8);
        h.push(Pt { x: 0.0, y: 3.0 });
        h.push(Pt { x: 0.0, y: 1.0 });
        h.push(Pt { x: 0.0, y: 2.0 });
        assert_eq!(h.lowest().unwrap().y, 1.0);
        assert_eq!(h.vertices(), 1);
        assert!(!h.push(Pt { x: -1.0, y: 0.0 }));
    }
}

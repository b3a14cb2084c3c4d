//! Alignment utilities for consumers of synchronized streams: sample a stream at given
//! reference times (nearest, or linear interpolation for continuous signals), and group
//! messages of several streams like ROS `message_filters::ApproximateTime`.
//!
//! All time slices must be sorted ascending (ns on the reference clock).

/// Index of the sample nearest to `q` and its signed offset (sample − query, ns).
pub fn nearest(times: &[u64], q: u64) -> Option<(usize, i64)> {
    if times.is_empty() {
        return None;
    }
    let i = times.partition_point(|&t| t < q);
    let cand = [i.checked_sub(1), (i < times.len()).then_some(i)];
    cand.into_iter()
        .flatten()
        .map(|j| (j, times[j] as i64 - q as i64))
        .min_by_key(|&(_, d)| d.unsigned_abs())
}

/// Nearest sample for every query (queries sorted), or `None` where the nearest one is
/// farther than `max_offset_ns`. O(n + m).
pub fn sample_nearest(
    times: &[u64],
    queries: &[u64],
    max_offset_ns: u64,
) -> Vec<Option<(usize, i64)>> {
    let mut out = Vec::with_capacity(queries.len());
    let mut j = 0;
    for &q in queries {
        while j + 1 < times.len() && times[j + 1] <= q {
            j += 1;
        }
        let mut best: Option<(usize, i64)> = None;
        for k in [j, j + 1] {
            if let Some(&t) = times.get(k) {
                let d = t as i64 - q as i64;
                if best.is_none_or(|(_, b)| d.unsigned_abs() < b.unsigned_abs()) {
                    best = Some((k, d));
                }
            }
        }
        out.push(best.filter(|&(_, d)| d.unsigned_abs() <= max_offset_ns));
    }
    out
}

/// Linear interpolation of a `dim`-dimensional signal (`values` row-major, one row per time)
/// at each query (sorted). `None` outside the data or across a gap wider than `max_gap_ns`.
pub fn sample_linear(
    times: &[u64],
    values: &[f64],
    dim: usize,
    queries: &[u64],
    max_gap_ns: u64,
) -> Vec<Option<Vec<f64>>> {
    assert_eq!(
        values.len(),
        times.len() * dim,
        "values must have one row of `dim` per time"
    );
    let mut out = Vec::with_capacity(queries.len());
    let mut j = 0;
    for &q in queries {
        while j + 1 < times.len() && times[j + 1] <= q {
            j += 1;
        }
        let row = |k: usize| &values[k * dim..(k + 1) * dim];
        let v = if times.is_empty() || q < times[0] || q > times[times.len() - 1] {
            None
        } else if times[j] == q {
            Some(row(j).to_vec())
        } else if j + 1 < times.len() && times[j + 1] - times[j] <= max_gap_ns {
            let f = (q - times[j]) as f64 / (times[j + 1] - times[j]) as f64;
            Some(
                row(j)
                    .iter()
                    .zip(row(j + 1))
                    .map(|(a, b)| a + (b - a) * f)
                    .collect(),
            )
        } else {
            None
        };
        out.push(v);
    }
    out
}

/// Group messages of several streams whose times lie within `max_interval_ns` of each other,
/// like ROS `ApproximateTime`: each message is used at most once, groups are in time order,
/// and one group per message of the sparsest stream at most. Returns one index per stream.
pub fn approximate_time(streams: &[&[u64]], max_interval_ns: u64) -> Vec<Vec<usize>> {
    if streams.is_empty() || streams.iter().any(|s| s.is_empty()) {
        return Vec::new();
    }
    let pivot = (0..streams.len())
        .min_by_key(|&i| streams[i].len())
        .expect("non-empty");
    let mut next = vec![0usize; streams.len()];
    let mut groups = Vec::new();
    for (pi, &tp) in streams[pivot].iter().enumerate() {
        let mut g = vec![0usize; streams.len()];
        let mut ok = true;
        for (s, times) in streams.iter().enumerate() {
            if s == pivot {
                g[s] = pi;
                continue;
            }
            match nearest(&times[next[s]..], tp) {
                Some((k, d)) if d.unsigned_abs() <= max_interval_ns => g[s] = next[s] + k,
                _ => {
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            continue;
        }
        let ts: Vec<u64> = g.iter().enumerate().map(|(s, &k)| streams[s][k]).collect();
        let spread = ts.iter().max().expect("non-empty") - ts.iter().min().expect("non-empty");
        if spread > max_interval_ns {
            continue;
        }
        for (s, &k) in g.iter().enumerate() {
            if s != pivot {
                next[s] = k + 1;
            }
        }
        groups.push(g);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_and_linear() {
        let t = [10, 20, 30, 100];
        assert_eq!(nearest(&t, 14), Some((0, -4)));
        assert_eq!(nearest(&t, 26), Some((2, 4)));
        assert_eq!(
            sample_nearest(&t, &[0, 24, 60, 200], 30),
            vec![Some((0, 10)), Some((1, -4)), Some((2, -30)), None]
        );
        let v = [0.0, 0.0, 1.0, 10.0, 2.0, 20.0, 9.0, 90.0];
        let r = sample_linear(&t, &v, 2, &[15, 30, 50, 5], 20);
        assert_eq!(r[0], Some(vec![0.5, 5.0]));
        assert_eq!(r[1], Some(vec![2.0, 20.0]));
        assert_eq!(r[2], None, "gap of 70 ns > 20");
        assert_eq!(r[3], None, "before the data");
    }

    #[test]
    fn approximate_time_groups_each_message_once() {
        let cam: Vec<u64> = (0..10).map(|k| k * 33_333 + 500).collect();
        let joints: Vec<u64> = (0..160).map(|k| k * 2_000).collect();
        let depth: Vec<u64> = (0..10)
            .filter(|&k| k != 4)
            .map(|k| k * 33_333 + 1_200)
            .collect();
        let g = approximate_time(&[&cam, &joints, &depth], 2_500);
        assert_eq!(g.len(), 9, "frame 4 has no depth partner");
        for grp in &g {
            let ts = [cam[grp[0]], joints[grp[1]], depth[grp[2]]];
            assert!(ts.iter().max().unwrap() - ts.iter().min().unwrap() <= 2_500);
        }
        let mut used: Vec<usize> = g.iter().map(|x| x[1]).collect();
        used.dedup();
        assert_eq!(used.len(), 9);
        // a tighter bound than the streams' relative jitter rejects groups rather than
        // stretching them
        let tight = approximate_time(&[&cam, &joints, &depth], 800);
        assert!(tight.len() < 9);
        for grp in &tight {
            let ts = [cam[grp[0]], joints[grp[1]], depth[grp[2]]];
            assert!(ts.iter().max().unwrap() - ts.iter().min().unwrap() <= 800);
        }
    }
}

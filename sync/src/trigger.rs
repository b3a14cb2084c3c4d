//! Trigger matching: give camera frames the precise time of the hardware trigger pulse that
//! exposed them.
//!
//! A board timestamps every trigger pulse (pulse number, reference time); the camera numbers
//! its frames. While locked, frame `s` belongs to pulse `s + k` for a fixed `k`. The lock is
//! acquired only after `lock_after` consecutive frames each had exactly one plausible pulse
//! (by latency) giving the same `k`, and it is dropped as soon as a matched pulse is
//! implausible. Skipped frames (sequence gaps) and duplicated frames are reported, never
//! silently absorbed.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TriggerConfig {
    /// Consecutive agreeing frames needed to lock.
    pub lock_after: u32,
    /// Plausible latency from trigger pulse to the frame's (approximate) time, ns.
    pub min_latency_ns: u64,
    pub max_latency_ns: u64,
    /// Pulses kept for matching.
    pub history: usize,
}

impl Default for TriggerConfig {
    fn default() -> Self {
        TriggerConfig {
            lock_after: 3,
            min_latency_ns: 0,
            max_latency_ns: 20_000_000,
            history: 256,
        }
    }
}

/// A triggered camera's part of its device's sync report.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct TriggerReport {
    /// The board (clock domain) whose pulses expose the camera, and its trigger line.
    pub board: String,
    pub line: u8,
    /// Topic the pulses are recorded on.
    pub pulses_topic: String,
    /// Pulse → start of exposure (µs), and the exposure time (µs; 0 = unknown): a matched
    /// frame is stamped at pulse + offset + exposure / 2.
    pub exposure_offset_us: f64,
    pub exposure_us: f64,
    #[serde(flatten)]
    pub stats: TriggerStats,
}

/// What became of a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameMatch {
    /// Exposed by `pulse` at `trigger_ns`; `skipped` frames were missing just before it.
    Matched {
        pulse: u64,
        trigger_ns: u64,
        skipped: u64,
    },
    /// Not (yet) locked, or its pulse has not arrived: use the frame's own estimate.
    Unmatched { skipped: u64, reason: &'static str },
    /// Same or older sequence number than a frame already seen.
    Duplicate,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct TriggerStats {
    /// Frames given their trigger pulse's time.
    pub matched: u64,
    /// Frames left to their own clock: `unmatched_unlocked + unmatched_no_pulse`.
    pub unmatched: u64,
    /// … because the lock was not (yet, or no longer) established.
    pub unmatched_unlocked: u64,
    /// … while locked, because their pulse never arrived (a dropped pulse).
    pub unmatched_no_pulse: u64,
    /// Frames missing before a frame (gaps in the camera's frame numbers).
    pub skipped_frames: u64,
    pub duplicate_frames: u64,
    /// Pulses missing (gaps in the board's pulse numbers).
    pub missing_pulses: u64,
    pub pulses: u64,
    /// Frames left unmatched while the lock was being acquired and matched once it held
    /// (included in `matched`; see [`TriggerMatcher::backfill`]).
    pub backfilled: u64,
    pub lock_losses: u64,
    pub locked: bool,
}

#[derive(Clone, Debug)]
pub struct TriggerMatcher {
    cfg: TriggerConfig,
    pulses: VecDeque<(u64, u64)>,
    lock: Option<i64>,
    candidate: Option<(i64, u32)>,
    last_seq: Option<u64>,
    last_pulse: Option<u64>,
    pub stats: TriggerStats,
}

impl TriggerMatcher {
    pub fn new(cfg: TriggerConfig) -> Self {
        TriggerMatcher {
            cfg,
            pulses: VecDeque::new(),
            lock: None,
            candidate: None,
            last_seq: None,
            last_pulse: None,
            stats: TriggerStats::default(),
        }
    }

    pub fn config(&self) -> &TriggerConfig {
        &self.cfg
    }

    /// A trigger pulse timestamped on the reference clock. Pulses come in order; a gap in
    /// their numbers is counted as missing pulses, a number going backwards (the board
    /// restarted) forgets the pulses of the old numbering and the lock.
    pub fn push_trigger(&mut self, pulse: u64, t_ns: u64) {
        self.stats.pulses += 1;
        match self.last_pulse {
            Some(l) if pulse > l => self.stats.missing_pulses += pulse - l - 1,
            Some(_) => {
                self.pulses.clear();
                if self.lock.take().is_some() {
                    self.stats.lock_losses += 1;
                    self.stats.locked = false;
                }
                self.candidate = None;
            }
            None => {}
        }
        self.last_pulse = Some(pulse);
        self.pulses.push_back((pulse, t_ns));
        while self.pulses.len() > self.cfg.history {
            self.pulses.pop_front();
        }
    }

    fn plausible(&self, trigger_ns: u64, frame_ns: u64) -> bool {
        frame_ns >= trigger_ns + self.cfg.min_latency_ns
            && frame_ns <= trigger_ns + self.cfg.max_latency_ns
    }

    /// Whether [`push_frame`](Self::push_frame) can decide this frame now: its pulse has
    /// arrived, or a pulse too late to have exposed it has (pulses arrive in order, so every
    /// candidate is in). A frame that is not ready should wait for more pulses, for a bounded
    /// time: a board that went silent makes no frame ready.
    pub fn ready(&self, seq: u64, approx_ns: u64) -> bool {
        let Some(&(newest, t)) = self.pulses.back() else {
            return false;
        };
        if let Some(k) = self.lock
            && newest as i64 >= seq as i64 + k
        {
            return true;
        }
        t + self.cfg.min_latency_ns > approx_ns
    }

    /// Once locked: the pulse of an earlier frame that [`push_frame`](Self::push_frame) left
    /// unmatched with "not locked yet" (a caller that held such frames stamps them now). The
    /// frame moves from unmatched to matched in the stats. `None` when not locked, its pulse
    /// is gone from the history, or it is not plausible.
    pub fn backfill(&mut self, seq: u64, approx_ns: u64) -> Option<(u64, u64)> {
        let k = self.lock?;
        let want = seq as i64 + k;
        let (p, t) = self.pulses.iter().find(|p| p.0 as i64 == want).copied()?;
        if !self.plausible(t, approx_ns) {
            return None;
        }
        self.stats.matched += 1;
        self.stats.unmatched = self.stats.unmatched.saturating_sub(1);
        self.stats.unmatched_unlocked = self.stats.unmatched_unlocked.saturating_sub(1);
        self.stats.backfilled += 1;
        Some((p, t))
    }

    /// A camera frame with its sequence number and approximate time (ns).
    pub fn push_frame(&mut self, seq: u64, approx_ns: u64) -> FrameMatch {
        let skipped = match self.last_seq {
            Some(l) if seq <= l => {
                self.stats.duplicate_frames += 1;
                return FrameMatch::Duplicate;
            }
            Some(l) => seq - l - 1,
            None => 0,
        };
        self.last_seq = Some(seq);
        self.stats.skipped_frames += skipped;
        if let Some(k) = self.lock {
            let want = seq as i64 + k;
            match self.pulses.iter().find(|p| p.0 as i64 == want).copied() {
                Some((pulse, t)) if self.plausible(t, approx_ns) => {
                    self.stats.matched += 1;
                    return FrameMatch::Matched {
                        pulse,
                        trigger_ns: t,
                        skipped,
                    };
                }
                Some(_) => {
                    self.lock = None;
                    self.candidate = None;
                    self.stats.lock_losses += 1;
                    self.stats.locked = false;
                }
                None => {
                    self.stats.unmatched += 1;
                    self.stats.unmatched_no_pulse += 1;
                    return FrameMatch::Unmatched {
                        skipped,
                        reason: "trigger pulse not received",
                    };
                }
            }
        }
        let plausible: Vec<(u64, u64)> = self
            .pulses
            .iter()
            .copied()
            .filter(|&(_, t)| self.plausible(t, approx_ns))
            .collect();
        if plausible.len() == 1 {
            let k = plausible[0].0 as i64 - seq as i64;
            let n = match self.candidate {
                Some((c, n)) if c == k => n + 1,
                _ => 1,
            };
            self.candidate = Some((k, n));
            if n >= self.cfg.lock_after {
                self.lock = Some(k);
                self.stats.locked = true;
                self.stats.matched += 1;
                return FrameMatch::Matched {
                    pulse: plausible[0].0,
                    trigger_ns: plausible[0].1,
                    skipped,
                };
            }
        } else {
            self.candidate = None;
        }
        self.stats.unmatched += 1;
        self.stats.unmatched_unlocked += 1;
        FrameMatch::Unmatched {
            skipped,
            reason: if plausible.is_empty() {
                "no plausible trigger pulse"
            } else {
                "not locked yet"
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_matches_and_reports_skips_and_duplicates() {
        let cfg = TriggerConfig {
            min_latency_ns: 3_000_000,
            max_latency_ns: 12_000_000,
            ..Default::default()
        };
        let mut m = TriggerMatcher::new(cfg);
        let period = 33_333_333u64;
        let mut matched = Vec::new();
        let mut seq = 500u64; // camera numbering unrelated to pulse numbering
        for pulse in 0..60u64 {
            let t = 1_000_000_000 + pulse * period;
            m.push_trigger(pulse, t);
            if pulse == 20 || pulse == 21 {
                seq += 1; // frames for pulses 20, 21 are lost
                continue;
            }
            let r = m.push_frame(seq, t + 5_000_000 + (pulse % 3) * 1_000_000);
            if let FrameMatch::Matched {
                pulse: p,
                trigger_ns,
                skipped,
            } = r
            {
                assert_eq!(p, pulse, "frame {seq} matched to the wrong pulse");
                assert_eq!(trigger_ns, t);
                if pulse == 22 {
                    assert_eq!(skipped, 2);
                }
                matched.push(p);
            }
            if pulse == 30 {
                assert_eq!(m.push_frame(seq, t + 6_000_000), FrameMatch::Duplicate);
            }
            seq += 1;
        }
        assert_eq!(
            matched.first(),
            Some(&2),
            "locked on the third agreeing frame"
        );

        assert_eq!(matched.len(), 60 - 2 - 2);
        assert_eq!(m.stats.skipped_frames, 2);
        assert_eq!(m.stats.duplicate_frames, 1);
        assert_eq!(m.stats.lock_losses, 0);
        // the two frames left unmatched before the lock get their pulses once it holds
        let t0 = 1_000_000_000u64;
        assert_eq!(m.backfill(500, t0 + 5_000_000), Some((0, t0)));
        assert_eq!(
            m.backfill(501, t0 + period + 6_000_000),
            Some((1, t0 + period))
        );
        assert_eq!(m.backfill(501, t0), None, "implausible: before its pulse");
        assert_eq!(m.stats.backfilled, 2);
        assert_eq!(m.stats.matched, 58);
        assert_eq!(m.stats.unmatched, 0);
    }

    #[test]
    fn ambiguous_windows_never_lock() {
        // latency window wider than the trigger period: two plausible pulses each time
        let cfg = TriggerConfig {
            min_latency_ns: 0,
            max_latency_ns: 40_000_000,
            ..Default::default()
        };
        let mut m = TriggerMatcher::new(cfg);
        for pulse in 0..30u64 {
            let t = pulse * 33_333_333;
            m.push_trigger(pulse, t);
            if pulse > 0 {
                let r = m.push_frame(pulse, t + 35_000_000 - 33_333_333 + 1_000_000);
                assert!(!matches!(r, FrameMatch::Matched { .. }), "{r:?}");
            }
        }
        assert!(!m.stats.locked);
    }
}

//! Episode planning: randomized task parameters, the pick-and-place timeline, and the
//! ground truth (phase boundaries, outcome) that follows `shared/design/taxonomy.md`.

use super::SimConfig;
use crate::kinematics::{ArmModel, Dof7};
use nalgebra::{Isometry3, Translation3, UnitQuaternion, Vector3};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A task phase (see `shared/design/taxonomy.md`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Idle,
    Reach,
    Grasp,
    Lift,
    Transport,
    Place,
    Release,
    Retreat,
    /// A span between changes in motion and contact, for a task with no grasp to anchor the
    /// names above on (an insertion with the part held from the start, a wipe, no gripper).
    Segment,
}

impl Phase {
    pub const ALL: [Phase; 9] = [
        Phase::Idle,
        Phase::Reach,
        Phase::Grasp,
        Phase::Lift,
        Phase::Transport,
        Phase::Place,
        Phase::Release,
        Phase::Retreat,
        Phase::Segment,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Reach => "reach",
            Phase::Grasp => "grasp",
            Phase::Lift => "lift",
            Phase::Transport => "transport",
            Phase::Place => "place",
            Phase::Release => "release",
            Phase::Retreat => "retreat",
            Phase::Segment => "segment",
        }
    }
}

/// A grasp outcome (one per attempt).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Slip,
    Drop,
    Miss,
}

/// One phase interval, times relative to the episode start in seconds.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct PhaseSpan {
    pub phase: Phase,
    pub start_s: f64,
    pub end_s: f64,
}

/// Randomized parameters of one episode.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct EpisodeParams {
    pub object_xy: [f64; 2],
    pub object_yaw: f64,
    /// Edge length of the (cubic) object, meters.
    pub object_size: f64,
    pub object_mass_kg: f64,
    pub target_xy: [f64; 2],
    /// Operator speed factor (1 = nominal).
    pub operator_speed: f64,
    /// Pauses inserted by the operator: (start s, duration s).
    pub hesitations: Vec<[f64; 2]>,
    pub outcome: Outcome,
    /// For slip: when the slip starts (s) and how far the object slides down (m).
    pub slip: Option<[f64; 2]>,
    /// For drop: when the object is lost (s).
    pub drop_s: Option<f64>,
    /// For miss: how far off the grasp point was (m).
    pub miss_offset_m: Option<f64>,
}

#[derive(Clone, Copy, Debug)]
struct Key {
    t: f64,
    pos: Vector3<f64>,
    yaw: f64,
}

pub(crate) fn min_jerk(tau: f64) -> f64 {
    let t = tau.clamp(0.0, 1.0);
    t * t * t * (10.0 - 15.0 * t + 6.0 * t * t)
}

/// The full plan of one episode: parameters, timelines and precomputed joint trajectory.
#[derive(Clone, Debug)]
pub struct EpisodePlan {
    pub params: EpisodeParams,
    pub duration_s: f64,
    pub phases: Vec<PhaseSpan>,
    pub arm: ArmModel,
    ee_keys: Vec<Key>,
    grip_keys: Vec<(f64, f64)>,
    /// Joint trajectory on a 1 kHz grid.
    q_grid: Vec<Dof7>,
    attach_s: Option<f64>,
    detach_s: Option<f64>,
    pub object_home: Vector3<f64>,
    down: UnitQuaternion<f64>,
}

/// Everything the sensors and the renderer need to know at one instant.
#[derive(Clone, Debug)]
pub struct WorldState {
    pub q: Dof7,
    pub qd: Dof7,
    pub tool: Isometry3<f64>,
    /// Gripper opening actually reached (m), stops at the object when gripping.
    pub aperture: f64,
    pub object: Isometry3<f64>,
    /// Object is held between the fingers.
    pub held: bool,
    /// Grip force (N) when holding.
    pub grip_force: f64,
    /// Object vertical acceleration (m/s^2) when held, for inertial load.
    pub object_acc_z: f64,
    /// How far the object has slid in the fingers (m).
    pub slip_offset: f64,
    /// Fraction of the object's weight taken by the table while held (0..1), during placing.
    pub support_share: f64,
}

pub const OPEN_APERTURE: f64 = 0.08;
const GRIP_STIFFNESS: f64 = 1500.0;
const G: f64 = 9.81;

impl EpisodePlan {
    /// Draw one episode's parameters and build its timeline.
    pub fn generate(cfg: &SimConfig, rng: &mut ChaCha8Rng, duration_s: f64) -> Self {
        let r = cfg.failures.clone();
        let u: f64 = rng.r#gen();
        let outcome = if u < r.miss {
            Outcome::Miss
        } else if u < r.miss + r.drop {
            Outcome::Drop
        } else if u < r.miss + r.drop + r.slip {
            Outcome::Slip
        } else {
            Outcome::Success
        };
        let object_size = rng.gen_range(0.04..0.06);
        let object_xy = [rng.gen_range(0.0..0.15), rng.gen_range(-0.25..-0.05)];
        let target_xy = [rng.gen_range(0.0..0.15), rng.gen_range(0.08..0.25)];
        let mut params = EpisodeParams {
            object_xy,
            object_yaw: rng.gen_range(-0.4..0.4),
            object_size,
            object_mass_kg: rng.gen_range(0.1..0.8),
            target_xy,
            operator_speed: rng.gen_range(0.8..1.3),
            hesitations: Vec::new(),
            outcome,
            slip: None,
            drop_s: None,
            miss_offset_m: None,
        };
        let arm = ArmModel::sim_default("right_arm_");
        let home_q = ArmModel::home();
        let home_pose = arm.fk(home_q.as_slice());
        let down = home_pose.rotation;

        // Nominal segment durations (s), scaled by operator speed, then fit into the episode.
        let hes_reach = if rng.gen_bool(0.5) {
            rng.gen_range(0.2..0.8)
        } else {
            0.0
        };
        let hes_transport = if rng.gen_bool(0.5) {
            rng.gen_range(0.2..0.8)
        } else {
            0.0
        };
        let mut d = [
            0.5,           // 0 idle at start
            1.0,           // 1 reach: home -> above object
            hes_reach,     // 2 hesitation
            0.6,           // 3 reach: descend to grasp pose
            0.5,           // 4 grasp: close
            0.15,          // 5 grasp: settle
            0.7,           // 6 lift
            0.8,           // 7 transport part 1
            hes_transport, // 8 hesitation
            0.8,           // 9 transport part 2
            0.9,           // 10 place: descend
            0.4,           // 11 release: open
            1.2,           // 12 retreat
        ];
        let speed = params.operator_speed;
        for x in d.iter_mut().skip(1) {
            *x /= speed;
        }
        let total: f64 = d.iter().sum();
        let budget = (duration_s - 0.3).max(0.5);
        if total > budget {
            let k = budget / total;
            for x in d.iter_mut() {
                *x *= k;
            }
        }
        let mut t = 0.0;
        let mut at = [0.0; 14];
        for (i, x) in d.iter().enumerate() {
            at[i] = t;
            t += x;
        }
        at[13] = t;
        if hes_reach > 0.0 {
            params.hesitations.push([at[2], d[2]]);
        }
        if hes_transport > 0.0 {
            params.hesitations.push([at[8], d[8]]);
        }

        let grasp_z = (object_size / 2.0).max(0.025);
        let yaw = params.object_yaw;
        let obj = Vector3::new(object_xy[0], object_xy[1], grasp_z);
        let mut grasp_point = obj;
        if outcome == Outcome::Miss {
            let off = rng.gen_range(0.05..0.07);
            params.miss_offset_m = Some(off);
            // The operator misjudges the object's position across the closing direction, so
            // the fingers close beside it.
            let rot = UnitQuaternion::from_axis_angle(&Vector3::z_axis(), yaw) * down;
            let closing = rot * Vector3::y();
            let perp = Vector3::z().cross(&closing).normalize();
            grasp_point += perp * off;
        }
        let lift_h = 0.12;
        let home = home_pose.translation.vector;
        let above = grasp_point + Vector3::new(0.0, 0.0, 0.10);
        let lifted = grasp_point + Vector3::new(0.0, 0.0, lift_h);
        let mid = Vector3::new(
            (grasp_point.x + target_xy[0]) / 2.0,
            (grasp_point.y + target_xy[1]) / 2.0,
            grasp_z + lift_h + 0.02,
        );
        let slip_dz = if outcome == Outcome::Slip {
            rng.gen_range(0.008..0.02)
        } else {
            0.0
        };
        let over_target = Vector3::new(target_xy[0], target_xy[1], grasp_z + lift_h);
        let placed = Vector3::new(target_xy[0], target_xy[1], grasp_z + slip_dz);
        let home_yaw = 0.0;

        let mut ee = vec![
            Key {
                t: 0.0,
                pos: home,
                yaw: home_yaw,
            },
            Key {
                t: at[1],
                pos: home,
                yaw: home_yaw,
            },
            Key {
                t: at[2],
                pos: above,
                yaw,
            },
            Key {
                t: at[3],
                pos: above,
                yaw,
            },
            Key {
                t: at[4],
                pos: grasp_point,
                yaw,
            },
            Key {
                t: at[6],
                pos: grasp_point,
                yaw,
            },
        ];
        let mut grip = vec![(0.0, OPEN_APERTURE), (at[4], OPEN_APERTURE)];
        let close_to = if outcome == Outcome::Miss {
            0.0
        } else {
            object_size - 0.01
        };
        grip.push((at[5], close_to));
        let mut phases = Vec::new();
        let push = |phases: &mut Vec<PhaseSpan>, p: Phase, s: f64| {
            if let Some(last) = phases.last_mut() {
                let last: &mut PhaseSpan = last;
                last.end_s = s;
            }
            phases.push(PhaseSpan {
                phase: p,
                start_s: s,
                end_s: s,
            });
        };
        push(&mut phases, Phase::Idle, 0.0);
        push(&mut phases, Phase::Reach, at[1]);
        push(&mut phases, Phase::Grasp, at[4]);
        let attach_s;
        let mut detach_s = None;
        let retreat_from;
        let retreat_start;
        if outcome == Outcome::Miss {
            // Closed on nothing: pause, open, retreat.
            attach_s = None;
            let open_at = at[6] + 0.3 / speed;
            let open_end = open_at + d[11];
            grip.push((open_at, close_to));
            grip.push((open_end, OPEN_APERTURE));
            ee.push(Key {
                t: open_end,
                pos: grasp_point,
                yaw,
            });
            push(&mut phases, Phase::Release, open_at);
            retreat_from = grasp_point;
            retreat_start = open_end;
        } else {
            attach_s = Some(at[6]);
            ee.push(Key {
                t: at[7],
                pos: lifted,
                yaw,
            });
            push(&mut phases, Phase::Lift, at[6]);
            // transport starts when the object is >= 2 cm above its support
            let t_clear =
                solve_min_jerk_time(at[6], at[7], grasp_z, grasp_z + lift_h, grasp_z + 0.02);
            push(&mut phases, Phase::Transport, t_clear);
            ee.push(Key {
                t: at[8],
                pos: mid,
                yaw,
            });
            ee.push(Key {
                t: at[9],
                pos: mid,
                yaw,
            });
            if outcome == Outcome::Slip {
                let ts = rng.gen_range(at[7]..at[9].max(at[7] + 0.01));
                params.slip = Some([ts, slip_dz]);
            }
            if outcome == Outcome::Drop {
                // Lost during the second half of transport: the operator stops, opens, retreats.
                let td = rng.gen_range(at[9]..at[9] + 0.6 * d[9]);
                params.drop_s = Some(td);
                let stop_pos = lerp_keys(&ee_with(&ee, at[10], over_target, yaw), td);
                ee.push(Key {
                    t: td,
                    pos: stop_pos,
                    yaw,
                });
                let open_at = td + 0.4 / speed;
                let open_end = open_at + d[11];
                ee.push(Key {
                    t: open_end,
                    pos: stop_pos,
                    yaw,
                });
                grip.push((open_at, close_to));
                grip.push((open_end, OPEN_APERTURE));
                detach_s = Some(td);
                push(&mut phases, Phase::Release, open_at);
                retreat_from = stop_pos;
                retreat_start = open_end;
            } else {
                ee.push(Key {
                    t: at[10],
                    pos: over_target,
                    yaw,
                });
                ee.push(Key {
                    t: at[11],
                    pos: placed,
                    yaw,
                });
                push(&mut phases, Phase::Place, at[10]);
                let open_end = at[12];
                grip.push((at[11], close_to));
                grip.push((open_end, OPEN_APERTURE));
                ee.push(Key {
                    t: open_end,
                    pos: placed,
                    yaw,
                });
                detach_s = Some(at[11]);
                push(&mut phases, Phase::Release, at[11]);
                retreat_from = placed;
                retreat_start = open_end;
            }
        }
        let retreat_end = retreat_start + d[12];
        let _ = retreat_from;
        ee.push(Key {
            t: retreat_end,
            pos: home,
            yaw: home_yaw,
        });
        push(&mut phases, Phase::Retreat, retreat_start);
        push(&mut phases, Phase::Idle, retreat_end.min(duration_s));
        if let Some(last) = phases.last_mut() {
            last.end_s = duration_s;
        }
        // Phases past the end of the episode are cut (a too-short episode ends mid-task).
        phases.retain(|p| p.start_s < duration_s);
        for p in phases.iter_mut() {
            p.end_s = p.end_s.min(duration_s);
        }

        let mut plan = EpisodePlan {
            params,
            duration_s,
            phases,
            arm,
            ee_keys: ee,
            grip_keys: grip,
            q_grid: Vec::new(),
            attach_s,
            detach_s,
            object_home: Vector3::new(object_xy[0], object_xy[1], object_size / 2.0),
            down,
        };
        plan.solve_ik();
        plan
    }

    fn tool_target(&self, t: f64) -> Isometry3<f64> {
        let p = lerp_keys(&self.ee_keys, t);
        let yaw = lerp_yaw(&self.ee_keys, t);
        let rot = UnitQuaternion::from_axis_angle(&Vector3::z_axis(), yaw) * self.down;
        Isometry3::from_parts(Translation3::from(p), rot)
    }

    fn solve_ik(&mut self) {
        let n = (self.duration_s * 1000.0).ceil() as usize + 2;
        let home = ArmModel::home();
        let mut q = home;
        // Settle on the start pose.
        let first = self.tool_target(0.0);
        for _ in 0..50 {
            q = self.arm.ik_step(&q, &first, &home).0;
        }
        self.q_grid.reserve(n);
        for i in 0..n {
            let target = self.tool_target(i as f64 / 1000.0);
            for _ in 0..3 {
                let (nq, err) = self.arm.ik_step(&q, &target, &home);
                q = nq;
                if err < 1e-7 {
                    break;
                }
            }
            self.q_grid.push(q);
        }
    }

    fn q_at(&self, t: f64) -> Dof7 {
        let x = (t * 1000.0).max(0.0);
        let i = (x.floor() as usize).min(self.q_grid.len() - 2);
        let f = (x - i as f64).clamp(0.0, 1.0);
        self.q_grid[i] * (1.0 - f) + self.q_grid[i + 1] * f
    }

    /// Commanded gripper opening at `t`.
    pub fn aperture_cmd(&self, t: f64) -> f64 {
        lerp_scalar(&self.grip_keys, t)
    }

    /// Which phase is active at `t` (episode-relative seconds).
    pub fn phase_at(&self, t: f64) -> Phase {
        self.phases
            .iter()
            .rev()
            .find(|p| p.start_s <= t)
            .map(|p| p.phase)
            .unwrap_or(Phase::Idle)
    }

    fn slip_offset(&self, t: f64) -> f64 {
        match self.params.slip {
            Some([ts, dz]) => dz * min_jerk((t - ts) / 0.15),
            None => 0.0,
        }
    }

    fn held(&self, t: f64) -> bool {
        match self.attach_s {
            Some(a) => t >= a && self.detach_s.is_none_or(|d| t < d),
            None => false,
        }
    }

    /// The simulated world at episode time `t` (seconds).
    pub fn state(&self, t: f64) -> WorldState {
        let q = self.q_at(t);
        let qd = (self.q_at(t + 0.001) - self.q_at((t - 0.001).max(0.0))) / 0.002;
        let tool = self.arm.fk(q.as_slice());
        let cmd = self.aperture_cmd(t);
        let size = self.params.object_size;
        let slip = self.slip_offset(t);
        let held = self.held(t);
        let gripping = held || (self.attach_s.is_some() && self.grasp_closing(t));
        let aperture = if gripping {
            cmd.max(size)
        } else {
            cmd.max(0.002)
        };
        let grip_force = if gripping {
            (GRIP_STIFFNESS * (size - cmd)).clamp(0.0, 20.0)
        } else {
            0.0
        };
        let yaw = self.params.object_yaw;
        let obj_rot = UnitQuaternion::from_axis_angle(&Vector3::z_axis(), yaw);
        let down_z = tool.rotation * Vector3::z();
        let object = if held {
            // The object sits at the tool center point, slid down by the slip offset.
            let p = tool.translation.vector + down_z * slip + self.center_offset();
            Isometry3::from_parts(Translation3::from(p), obj_rot)
        } else if let (Some(d), true) = (self.detach_s, self.attach_s.is_some()) {
            if t >= d {
                let at = self.arm.fk(self.q_at(d).as_slice());
                let mut p = at.translation.vector
                    + (at.rotation * Vector3::z()) * self.slip_offset(d)
                    + self.center_offset();
                if self.params.outcome == Outcome::Drop {
                    let fall = 0.5 * G * (t - d).powi(2);
                    p.z = (p.z - fall).max(size / 2.0);
                } else {
                    p.z = size / 2.0;
                }
                Isometry3::from_parts(Translation3::from(p), obj_rot)
            } else {
                Isometry3::from_parts(Translation3::from(self.object_home), obj_rot)
            }
        } else {
            Isometry3::from_parts(Translation3::from(self.object_home), obj_rot)
        };
        let object_acc_z = if held {
            let z = |tt: f64| self.arm.fk(self.q_at(tt).as_slice()).translation.z;
            let h = 0.01;
            (z(t + h) - 2.0 * z(t) + z((t - h).max(0.0))) / (h * h)
        } else {
            0.0
        };
        // During the last part of place the table takes over the weight.
        let support_share = if held {
            let contact_z = size / 2.0 + 0.004;
            let obj_z = object.translation.z;
            ((contact_z - obj_z) / 0.004 + 1.0).clamp(0.0, 1.0)
                * if obj_z < contact_z { 1.0 } else { 0.0 }
        } else {
            0.0
        };
        WorldState {
            q,
            qd,
            tool,
            aperture,
            object,
            held,
            grip_force,
            object_acc_z,
            slip_offset: slip,
            support_share,
        }
    }

    fn center_offset(&self) -> Vector3<f64> {
        // Tool center point is at the object's center when grasping at grasp_z; for objects
        // smaller than 5 cm the grasp is above center.
        let grasp_z = (self.params.object_size / 2.0).max(0.025);
        Vector3::new(0.0, 0.0, self.params.object_size / 2.0 - grasp_z)
    }

    fn grasp_closing(&self, t: f64) -> bool {
        // Between fingers touching the object and the lift.
        let a = self.attach_s.unwrap_or(f64::MAX);
        let cmd = self.aperture_cmd(t);
        t < a
            && t >= self
                .phases
                .iter()
                .find(|p| p.phase == Phase::Grasp)
                .map_or(f64::MAX, |p| p.start_s)
            && cmd <= self.params.object_size
    }
}

fn ee_with(keys: &[Key], t: f64, pos: Vector3<f64>, yaw: f64) -> Vec<Key> {
    let mut v = keys.to_vec();
    v.push(Key { t, pos, yaw });
    v
}

fn seg(keys: &[Key], t: f64) -> (usize, f64) {
    if t <= keys[0].t {
        return (0, 0.0);
    }
    for i in 0..keys.len() - 1 {
        if t < keys[i + 1].t {
            let span = keys[i + 1].t - keys[i].t;
            let tau = if span > 0.0 {
                (t - keys[i].t) / span
            } else {
                1.0
            };
            return (i, min_jerk(tau));
        }
    }
    (keys.len() - 1, 0.0)
}

fn lerp_keys(keys: &[Key], t: f64) -> Vector3<f64> {
    let (i, s) = seg(keys, t);
    if i + 1 >= keys.len() {
        return keys[i].pos;
    }
    keys[i].pos * (1.0 - s) + keys[i + 1].pos * s
}

fn lerp_yaw(keys: &[Key], t: f64) -> f64 {
    let (i, s) = seg(keys, t);
    if i + 1 >= keys.len() {
        return keys[i].yaw;
    }
    keys[i].yaw * (1.0 - s) + keys[i + 1].yaw * s
}

pub(crate) fn lerp_scalar(keys: &[(f64, f64)], t: f64) -> f64 {
    if t <= keys[0].0 {
        return keys[0].1;
    }
    for w in keys.windows(2) {
        if t < w[1].0 {
            let span = w[1].0 - w[0].0;
            let s = if span > 0.0 {
                min_jerk((t - w[0].0) / span)
            } else {
                1.0
            };
            return w[0].1 * (1.0 - s) + w[1].1 * s;
        }
    }
    keys[keys.len() - 1].1
}

/// Time in [t0, t1] at which a min-jerk move from z0 to z1 passes z.
pub(crate) fn solve_min_jerk_time(t0: f64, t1: f64, z0: f64, z1: f64, z: f64) -> f64 {
    let target = (z - z0) / (z1 - z0);
    let (mut lo, mut hi) = (0.0, 1.0);
    for _ in 0..60 {
        let m = 0.5 * (lo + hi);
        if min_jerk(m) < target {
            lo = m;
        } else {
            hi = m;
        }
    }
    t0 + (t1 - t0) * 0.5 * (lo + hi)
}

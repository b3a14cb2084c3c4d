//! Task families beyond the humanoid's pick and place, for developing and measuring the
//! annotator on a robot and on tasks it was not written for.
//!
//! Every family runs on a second robot, a UR5e-like 6-DoF arm described by a URDF
//! ([`crate::robot::UR_LIKE_URDF`]), with no tactile pads and an *untared* wrist force sensor
//! (bias, drift, the gripper's own weight), sampled as a UR controller publishes: joint
//! states at 125 Hz, the wrench at 500 Hz. The end effector follows task-space key poses
//! through a damped-least-squares IK on the URDF chain, so the joint trajectories are what
//! that arm would do.
//!
//! | family | what it tests |
//! |---|---|
//! | `six_dof` | pick and place with injected slips, drops and misses, another arm, no touch |
//! | `rough_teleop` | the same with a rough operator: hand tremor, overshoot and correction, pauses, skewed (non-min-jerk) velocity profiles |
//! | `pull_off` | the part is stuck: the load rises until it detaches, then falls back to the part's weight (not a drop) |
//! | `regrasp` | a first attempt misses or loses the part while lifting; the operator reopens and grasps again |
//! | `insertion` | the peg is held from the start (no grasp to anchor on): carry, contact, push in, let go, retreat |
//! | `wipe` | no gripper at all: approach a surface, wipe it in contact, lift off |
//!
//! The ground truth follows `shared/design/taxonomy.md`: phase names when a grasp is seen, one
//! outcome per attempt (the episode's is the last); `segment` spans, split at the changes in
//! motion and contact, for the two task-agnostic families.

use super::plan::{Outcome, Phase, PhaseSpan, lerp_scalar, min_jerk, solve_min_jerk_time};
use crate::robot::{Chain, Kinematics, UR_LIKE_URDF, Urdf};
use nalgebra::{DMatrix, DVector, Isometry3, Translation3, UnitQuaternion, Vector3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

/// A task family (see the module's table).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    SixDof,
    RoughTeleop,
    PullOff,
    Regrasp,
    Insertion,
    Wipe,
}

impl Family {
    pub const ALL: [Family; 6] = [
        Family::SixDof,
        Family::RoughTeleop,
        Family::PullOff,
        Family::Regrasp,
        Family::Insertion,
        Family::Wipe,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Family::SixDof => "six_dof",
            Family::RoughTeleop => "rough_teleop",
            Family::PullOff => "pull_off",
            Family::Regrasp => "regrasp",
            Family::Insertion => "insertion",
            Family::Wipe => "wipe",
        }
    }
    /// No grasp to anchor on: the truth is `segment` spans.
    pub fn task_agnostic(self) -> bool {
        matches!(self, Family::Insertion | Family::Wipe)
    }
}

/// One generated episode: the arm's joint states, the gripper, the raw wrench, the truth.
#[derive(Clone, Debug)]
pub struct FamilyEpisode {
    pub family: Family,
    pub joint_names: Vec<String>,
    pub duration_s: f64,
    /// Joint sample times (s from the episode start) and positions (rad, chain order).
    pub t: Vec<f64>,
    pub q: Vec<Vec<f64>>,
    /// Gripper opening (m) at the joint times; `None` for a robot without a gripper.
    pub aperture: Option<Vec<f64>>,
    /// Wrist wrench in the sensor (tool) frame, untared: times and (fx, fy, fz, tx, ty, tz).
    pub wrench_t: Vec<f64>,
    pub wrench: Vec<[f64; 6]>,
    pub phases: Vec<PhaseSpan>,
    /// One outcome per grasp attempt (empty for the task-agnostic families).
    pub attempts: Vec<Outcome>,
    /// The IK's largest distance (m) from the planned tool position.
    pub max_ik_error_m: f64,
}

impl FamilyEpisode {
    /// The episode's outcome: its last attempt's (`None` without a grasp).
    pub fn outcome(&self) -> Option<Outcome> {
        self.attempts.last().copied()
    }
}

/// The family's robot: the UR-like chain from its URDF.
pub fn ur_like() -> Chain {
    Urdf::parse(UR_LIKE_URDF)
        .and_then(|u| u.chain(None, None))
        .expect("the built-in URDF parses")
}

/// The UR-like arm's home: elbow up, the tool pointing down.
pub const UR_HOME: [f64; 6] = [0.0, -1.9, 1.9, -1.57, -1.57, 0.0];

/// An arm the families run on: its chain and its home configuration.
#[derive(Clone, Debug)]
pub struct Robot {
    pub chain: Chain,
    pub home: Vec<f64>,
}

impl Robot {
    /// The UR-like 6-DoF arm.
    pub fn ur_like() -> Robot {
        Robot {
            chain: ur_like(),
            home: UR_HOME.to_vec(),
        }
    }
    /// The 5-DoF arm ([`crate::robot::five_dof_urdf`]), at the UR-like home with the locked
    /// joint left out.
    pub fn five_dof() -> Robot {
        Robot {
            chain: Urdf::parse(&crate::robot::five_dof_urdf())
                .and_then(|u| u.chain(None, None))
                .expect("the built-in URDF parses"),
            home: vec![0.0, -1.9, 1.9, -1.57, 0.0],
        }
    }
}

/// One damped-least-squares IK step of any chain toward `target` (position and orientation),
/// with a weak pull toward `rest`; returns the new configuration and the remaining error.
pub fn ik_step(
    k: &dyn Kinematics,
    q: &[f64],
    target: &Isometry3<f64>,
    rest: &[f64],
) -> (Vec<f64>, f64) {
    let n = q.len();
    let cur = k.fk(q);
    let err = pose_error(&cur, target);
    let mut jac = DMatrix::<f64>::zeros(6, n);
    let h = 1e-6;
    for j in 0..n {
        let mut qp = q.to_vec();
        qp[j] += h;
        let e = pose_error(&cur, &k.fk(&qp));
        jac.set_column(j, &(e / h));
    }
    let jjt = &jac * jac.transpose() + DMatrix::<f64>::identity(6, 6) * 1e-5;
    let inv = jjt.try_inverse().unwrap_or_else(|| DMatrix::identity(6, 6));
    let jpinv = jac.transpose() * inv;
    let dq = &jpinv * &err;
    let null = DMatrix::<f64>::identity(n, n) - &jpinv * &jac;
    let pull = DVector::from_iterator(n, q.iter().zip(rest).map(|(a, b)| (b - a) * 0.02));
    let dq = dq + null * pull;
    (
        q.iter().zip(dq.iter()).map(|(a, d)| a + d).collect(),
        err.norm(),
    )
}

fn pose_error(cur: &Isometry3<f64>, target: &Isometry3<f64>) -> DVector<f64> {
    let dp = target.translation.vector - cur.translation.vector;
    let dr = (target.rotation * cur.rotation.inverse()).scaled_axis();
    DVector::from_vec(vec![dp.x, dp.y, dp.z, dr.x, dr.y, dr.z])
}

const G: f64 = 9.81;
const OPEN: f64 = 0.085;
const JOINT_HZ: f64 = 125.0;
const WRENCH_HZ: f64 = 500.0;

#[derive(Clone, Copy, Debug)]
struct Key {
    t: f64,
    pos: Vector3<f64>,
    yaw: f64,
    /// The velocity profile's skew on the way to this key (0: min-jerk; up to 1: a fast
    /// start and a long tail, as a human hand moves).
    skew: f64,
}

/// The timeline under construction: end-effector keys, gripper keys, phase marks.
struct Builder {
    t: f64,
    ee: Vec<Key>,
    grip: Vec<(f64, f64)>,
    marks: Vec<(Phase, f64)>,
    rough: bool,
    rng: ChaCha8Rng,
}

impl Builder {
    fn pos(&self) -> Vector3<f64> {
        self.ee.last().expect("a start key").pos
    }
    fn yaw(&self) -> f64 {
        self.ee.last().expect("a start key").yaw
    }
    fn aperture(&self) -> f64 {
        self.grip.last().map_or(OPEN, |g| g.1)
    }
    fn mark(&mut self, p: Phase) {
        self.marks.push((p, self.t));
    }
    fn key(&mut self, t: f64, pos: Vector3<f64>, yaw: f64, skew: f64) {
        self.ee.push(Key { t, pos, yaw, skew });
    }
    fn wait(&mut self, d: f64) {
        let (p, y) = (self.pos(), self.yaw());
        self.t += d;
        self.key(self.t, p, y, 0.0);
    }
    /// Move to `pos` in `d` s. A rough operator's skewed profile, an occasional pause on the
    /// way and, with `precise`, an overshoot then a correction within the same move.
    fn move_to(&mut self, pos: Vector3<f64>, yaw: f64, d: f64, precise: bool) {
        if !self.rough {
            self.t += d;
            self.key(self.t, pos, yaw, 0.0);
            return;
        }
        let skew = self.rng.gen_range(0.3..0.8);
        let from = self.pos();
        if self.rng.gen_bool(0.25) && d > 0.6 {
            // a pause on the way (sub-second: not a phase of its own)
            let f = self.rng.gen_range(0.4..0.7);
            let mid = from + (pos - from) * f;
            self.t += d * f;
            self.key(self.t, mid, yaw, skew);
            let pause = self.rng.gen_range(0.15..0.45);
            self.wait(pause);
            self.t += d * (1.0 - f);
            self.key(self.t, pos, yaw, skew);
        } else if precise && self.rng.gen_bool(0.5) {
            let dir = {
                let a: f64 = self.rng.gen_range(0.0..std::f64::consts::TAU);
                Vector3::new(a.cos(), a.sin(), 0.0)
            };
            let over = pos + dir * self.rng.gen_range(0.006..0.015);
            self.t += d * 0.85;
            self.key(self.t, over, yaw, skew);
            self.t += self.rng.gen_range(0.25..0.45);
            self.key(self.t, pos, yaw, 0.0);
        } else {
            self.t += d;
            self.key(self.t, pos, yaw, skew);
        }
    }
    /// Close or open the gripper to `ap` in `d` s, the arm still.
    fn grip_to(&mut self, ap: f64, d: f64) {
        let a0 = self.aperture();
        self.grip.push((self.t, a0));
        self.wait(d);
        self.grip.push((self.t, ap));
    }
    fn phases(&self, duration: f64) -> Vec<PhaseSpan> {
        let mut out: Vec<PhaseSpan> = Vec::new();
        for (i, (p, s)) in self.marks.iter().enumerate() {
            let end = self.marks.get(i + 1).map_or(duration, |m| m.1);
            if *s >= duration {
                break;
            }
            out.push(PhaseSpan {
                phase: *p,
                start_s: *s,
                end_s: end.min(duration),
            });
        }
        out
    }
}

fn ee_at(keys: &[Key], t: f64) -> (Vector3<f64>, f64) {
    if t <= keys[0].t {
        return (keys[0].pos, keys[0].yaw);
    }
    for w in keys.windows(2) {
        if t < w[1].t {
            let span = w[1].t - w[0].t;
            let tau = if span > 0.0 { (t - w[0].t) / span } else { 1.0 };
            // skew k: time warped by τ + k τ (1 − τ), smooth with finite acceleration, the
            // velocity peaking early and tailing off (a human reach), min-jerk at k = 0
            let k = w[1].skew;
            let s = min_jerk(tau + k * tau * (1.0 - tau));
            return (
                w[0].pos + (w[1].pos - w[0].pos) * s,
                w[0].yaw + (w[1].yaw - w[0].yaw) * s,
            );
        }
    }
    let k = keys[keys.len() - 1];
    (k.pos, k.yaw)
}

/// When, between `t0` (where `before(z)` holds for the tool height) and `t1` (where it no
/// longer does), the planned tool height crosses over (bisection).
fn crossing(keys: &[Key], t0: f64, t1: f64, before: impl Fn(f64) -> bool) -> f64 {
    let (mut lo, mut hi) = (t0, t1);
    for _ in 0..50 {
        let m = 0.5 * (lo + hi);
        if before(ee_at(keys, m).0.z) {
            lo = m;
        } else {
            hi = m;
        }
    }
    0.5 * (lo + hi)
}

fn scalar_at(keys: &[(f64, f64)], t: f64, before: f64) -> f64 {
    if keys.is_empty() {
        before
    } else {
        lerp_scalar(keys, t)
    }
}

/// What loads the wrist, beyond the gripper's own weight.
#[derive(Clone, Debug, Default)]
struct Loads {
    mass: f64,
    /// Intervals (s) in which the part hangs in the fingers.
    held: Vec<[f64; 2]>,
    /// Intervals (s) in which the part is between the fingers (from the closing on): the
    /// fingers stop at it.
    between: Vec<[f64; 2]>,
    /// Slip: start (s), how far the part slides (m).
    slip: Option<[f64; 2]>,
    /// Instants the part is lost or comes free (the sensor rings).
    rings: Vec<f64>,
    /// A stuck part: the pull's start, the instant it comes free, the force it takes (N).
    pull: Option<[f64; 3]>,
    /// Setting down: the height (tool z) at which the support takes the part's weight.
    support_z: Option<f64>,
    /// A surface the tool or peg presses on.
    surface: Option<Surface>,
}

/// A surface under the tool: its height (m), stiffness (N/m) and friction coefficient, and
/// when it stops loading the wrist (s; a peg let go no longer does).
#[derive(Clone, Copy, Debug)]
struct Surface {
    z: f64,
    stiffness: f64,
    friction: f64,
    until: f64,
}

impl Loads {
    fn held(&self, t: f64) -> bool {
        self.held.iter().any(|h| t >= h[0] && t < h[1])
    }
    fn between(&self, t: f64) -> bool {
        self.between.iter().any(|h| t >= h[0] && t < h[1])
    }
}

/// Generate episode `index` of `family` on the UR-like arm, seeded.
pub fn generate(family: Family, seed: u64, index: u64) -> FamilyEpisode {
    generate_on(&Robot::ur_like(), family, seed, index)
}

/// Generate episode `index` of `family` on `robot`, seeded.
pub fn generate_on(robot: &Robot, family: Family, seed: u64, index: u64) -> FamilyEpisode {
    let chain = robot.chain.clone();
    let home_q = robot.home.clone();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (index.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    let home_pose = chain.fk(&home_q);
    let home = home_pose.translation.vector;
    let down = home_pose.rotation;
    let table = home.z - 0.28;
    let speed = rng.gen_range(0.8..1.25);
    let d = |x: f64| x / speed;
    let mut b = Builder {
        t: 0.0,
        ee: vec![Key {
            t: 0.0,
            pos: home,
            yaw: 0.0,
            skew: 0.0,
        }],
        grip: Vec::new(),
        marks: Vec::new(),
        rough: family == Family::RoughTeleop,
        rng: ChaCha8Rng::seed_from_u64(rng.r#gen()),
    };
    let mut loads = Loads {
        mass: rng.gen_range(0.15..0.9),
        ..Default::default()
    };
    let mut attempts = Vec::new();
    let size = rng.gen_range(0.04..0.06);
    let obj = Vector3::new(
        home.x + rng.gen_range(-0.08..0.08),
        home.y + rng.gen_range(-0.2..-0.08),
        table + size / 2.0,
    );
    let target = Vector3::new(
        home.x + rng.gen_range(-0.08..0.08),
        home.y + rng.gen_range(0.08..0.2),
        table + size / 2.0,
    );
    let yaw = rng.gen_range(-0.4..0.4);
    let up = |p: Vector3<f64>, h: f64| p + Vector3::new(0.0, 0.0, h);
    let closed = size - 0.008;
    let mut gripper = true;

    b.mark(Phase::Idle);
    b.wait(rng.gen_range(0.4..1.0));
    match family {
        Family::SixDof | Family::RoughTeleop | Family::PullOff | Family::Regrasp => {
            let outcome = match family {
                Family::SixDof | Family::RoughTeleop => {
                    let u: f64 = rng.r#gen();
                    if u < 0.15 {
                        Outcome::Miss
                    } else if u < 0.3 {
                        Outcome::Drop
                    } else if u < 0.45 {
                        Outcome::Slip
                    } else {
                        Outcome::Success
                    }
                }
                Family::PullOff => {
                    if rng.gen_bool(0.2) {
                        Outcome::Drop
                    } else {
                        Outcome::Success
                    }
                }
                _ => Outcome::Success,
            };
            // regrasp: the first attempt misses or loses the part while lifting
            if family == Family::Regrasp {
                let first = if rng.gen_bool(0.5) {
                    Outcome::Miss
                } else {
                    Outcome::Drop
                };
                let off = if first == Outcome::Miss {
                    let a: f64 = yaw + std::f64::consts::FRAC_PI_2;
                    Vector3::new(a.cos(), a.sin(), 0.0) * rng.gen_range(0.05..0.07)
                } else {
                    Vector3::zeros()
                };
                b.mark(Phase::Reach);
                b.move_to(up(obj + off, 0.1), yaw, d(1.0), false);
                b.move_to(obj + off, yaw, d(0.6), true);
                b.mark(Phase::Grasp);
                if first == Outcome::Miss {
                    b.grip_to(0.0, d(0.5));
                    b.wait(d(0.3));
                } else {
                    let g0 = b.t;
                    b.grip_to(closed, d(0.5));
                    let a = b.t;
                    b.wait(0.15);
                    b.mark(Phase::Lift);
                    let lift_at = b.t;
                    b.move_to(up(obj, 0.06), yaw, d(0.6), false);
                    // 2 cm above its support it is being carried (taxonomy: transport)
                    if let Some(tc) = solve(lift_at, d(0.6), obj.z, obj.z + 0.06, obj.z + 0.02) {
                        b.marks.push((Phase::Transport, tc));
                    }
                    // it slides out when 4-5 cm up
                    let lost = lift_at + d(0.6) * rng.gen_range(0.72..0.85);
                    loads.held.push([a, lost]);
                    loads.between.push([g0, lost]);
                    loads.rings.push(lost);
                    b.wait(d(0.3));
                }
                attempts.push(first);
                b.mark(Phase::Release);
                b.grip_to(OPEN, d(0.4));
                // the part lies where it was (a dropped one fell back onto its place)
                b.mark(Phase::Reach);
                let p = b.pos();
                // up and back over the part, at least 8 cm above it
                let (a, c) = (up(p, 0.05), up(obj, 0.08));
                b.move_to(if a.z >= c.z { a } else { c }, yaw, d(0.5), false);
            }
            let approach = obj;
            if family != Family::Regrasp {
                b.mark(Phase::Reach);
            }
            let miss_off = if outcome == Outcome::Miss {
                let a: f64 = yaw + std::f64::consts::FRAC_PI_2;
                Vector3::new(a.cos(), a.sin(), 0.0) * rng.gen_range(0.05..0.07)
            } else {
                Vector3::zeros()
            };
            b.move_to(up(approach + miss_off, 0.1), yaw, d(1.0), false);
            if rng.gen_bool(0.4) {
                b.wait(rng.gen_range(0.2..0.7));
            }
            b.move_to(approach + miss_off, yaw, d(0.6), true);
            b.mark(Phase::Grasp);
            if outcome == Outcome::Miss {
                b.grip_to(0.0, d(0.5));
                b.wait(d(0.3));
                b.mark(Phase::Release);
                b.grip_to(OPEN, d(0.4));
            } else {
                let g0 = b.t;
                b.grip_to(closed, d(0.5));
                let attach = b.t;
                b.wait(0.15);
                let mut lifted_from = obj.z;
                if family == Family::PullOff {
                    // the part is stuck: the arm pulls up slowly against it until it comes free
                    let pull_s = rng.gen_range(0.8..1.4);
                    let rise = rng.gen_range(0.005..0.01);
                    let force = rng.gen_range(15.0..35.0);
                    let t0 = b.t;
                    b.move_to(up(obj, rise), yaw, pull_s, false);
                    loads.pull = Some([t0, b.t, force]);
                    loads.rings.push(b.t);
                    lifted_from = obj.z + rise;
                }
                b.mark(Phase::Lift);
                let lift_t0 = b.t;
                let lift_h = 0.12;
                let lift_d = d(0.7);
                let lift_from = b.pos();
                b.move_to(up(obj, lift_h), yaw, lift_d, false);
                // transport begins when the part is 2 cm above its support
                let t_clear = solve(
                    lift_t0,
                    lift_d,
                    lift_from.z,
                    obj.z + lift_h,
                    lifted_from + 0.02,
                )
                .unwrap_or(b.t);
                b.marks.push((Phase::Transport, t_clear));
                let mid = (obj + target) / 2.0 + Vector3::new(0.0, 0.0, lift_h + 0.02);
                let t_mid0 = b.t;
                b.move_to(mid, yaw, d(0.8), false);
                if outcome == Outcome::Slip {
                    let ts = rng.gen_range(t_mid0..b.t);
                    loads.slip = Some([ts, rng.gen_range(0.008..0.02)]);
                }
                if rng.gen_bool(0.4) {
                    b.wait(rng.gen_range(0.2..0.7));
                }
                let over = up(target, lift_h);
                let t_tr2 = b.t;
                b.move_to(over, yaw, d(0.8), false);
                if outcome == Outcome::Drop {
                    // lost during the second half of transport: stop, open, retreat
                    let td = rng.gen_range(t_tr2..t_tr2 + 0.6 * d(0.8));
                    // the arm stops where it was when the part fell
                    let (p, _) = ee_at(&b.ee, td);
                    b.ee.retain(|k| k.t < td);
                    b.t = td;
                    b.key(td, p, yaw, 0.0);
                    loads.held.push([attach, td]);
                    loads.between.push([g0, td]);
                    loads.rings.push(td);
                    b.wait(d(0.4));
                    b.mark(Phase::Release);
                    b.grip_to(OPEN, d(0.4));
                } else {
                    b.mark(Phase::Place);
                    let slip_dz = loads.slip.map_or(0.0, |s| s[1]);
                    let placed = target + Vector3::new(0.0, 0.0, slip_dz);
                    b.move_to(placed, yaw, d(0.9), true);
                    loads.support_z = Some(placed.z);
                    b.mark(Phase::Release);
                    let t_open = b.t;
                    b.grip_to(OPEN, d(0.4));
                    loads.held.push([attach, t_open + d(0.1)]);
                    loads.between.push([g0, t_open + d(0.1)]);
                }
            }
            attempts.push(outcome);
            b.mark(Phase::Retreat);
            let p = b.pos();
            b.move_to(up(p, 0.08), yaw, d(0.5), false);
            b.move_to(home, 0.0, d(0.9), false);
            b.mark(Phase::Idle);
        }
        Family::Insertion => {
            // the peg is in the fingers from the start
            b.grip.push((0.0, closed));
            loads.held.push([0.0, f64::INFINITY]);
            loads.between.push([0.0, f64::INFINITY]);
            let hole = target;
            let depth = rng.gen_range(0.015..0.03);
            let contact_z = hole.z + 0.01;
            b.mark(Phase::Segment);
            b.move_to(up(hole, 0.06), yaw, d(1.4), false);
            b.wait(rng.gen_range(0.2..0.6));
            b.move_to(up(hole, 0.01 - depth), yaw, d(1.6), true);
            let t_end = b.t;
            // contact: where the descent passes the hole's entrance
            let t_contact = crossing(&b.ee, t_end - d(1.6), t_end, |z| z > contact_z);
            b.marks.push((Phase::Segment, t_contact));
            b.wait(rng.gen_range(0.3..0.8));
            b.mark(Phase::Segment);
            let t_open = b.t;
            b.grip_to(OPEN, d(0.4));
            loads.held = vec![[0.0, t_open + d(0.15)]];
            loads.between = vec![[0.0, t_open + d(0.15)]];
            loads.surface = Some(Surface {
                z: contact_z,
                stiffness: rng.gen_range(300.0..600.0),
                friction: 0.0,
                until: t_open + d(0.15),
            });
            b.mark(Phase::Segment);
            let p = b.pos();
            b.move_to(up(p, 0.1), yaw, d(0.7), false);
            b.move_to(home, 0.0, d(0.9), false);
            b.mark(Phase::Segment);
        }
        Family::Wipe => {
            gripper = false;
            loads.mass = 0.0;
            let a = Vector3::new(home.x, home.y - 0.12, table);
            let press = rng.gen_range(0.003..0.006);
            b.mark(Phase::Segment);
            b.move_to(up(a, 0.04), yaw, d(1.2), false);
            b.move_to(up(a, -press), yaw, d(0.8), false);
            let t_end = b.t;
            let t_contact = crossing(&b.ee, t_end - d(0.8), t_end, |z| z > table);
            b.marks.push((Phase::Segment, t_contact));
            let strokes = rng.gen_range(2..5);
            for k in 0..strokes {
                let y = if k % 2 == 0 { 0.2 } else { 0.0 };
                b.move_to(
                    up(a, -press) + Vector3::new(0.0, y, 0.0),
                    yaw,
                    d(0.8),
                    false,
                );
            }
            let t0 = b.t;
            b.move_to(up(b.pos(), 0.05), yaw, d(0.6), false);
            let t_off = crossing(&b.ee, t0, b.t, |z| z < table);
            b.marks.push((Phase::Segment, t_off));
            loads.surface = Some(Surface {
                z: table,
                stiffness: rng.gen_range(2000.0..5000.0),
                friction: 0.4,
                until: f64::INFINITY,
            });
            b.move_to(home, 0.0, d(1.0), false);
            b.mark(Phase::Segment);
        }
    }
    b.wait(rng.gen_range(0.6..1.2));
    let duration = b.t;
    b.marks.sort_by(|x, y| x.1.total_cmp(&y.1));
    let phases = b.phases(duration);

    // sample: joints through IK, the gripper, the wrench
    let tremor: Vec<(Vector3<f64>, f64, f64)> = if b.rough {
        (0..3)
            .map(|_| {
                let amp = rng.gen_range(0.0002..0.0005);
                let dir = Vector3::new(
                    rng.gen_range(-1.0..1.0),
                    rng.gen_range(-1.0..1.0),
                    rng.gen_range(-1.0..1.0),
                )
                .normalize();
                (
                    dir * amp,
                    rng.gen_range(4.0..9.0),
                    rng.gen_range(0.0..std::f64::consts::TAU),
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    let target_at = |t: f64| {
        let (mut p, y) = ee_at(&b.ee, t);
        for (a, f, ph) in &tremor {
            p += a * (std::f64::consts::TAU * f * t + ph).sin();
        }
        Isometry3::from_parts(
            Translation3::from(p),
            UnitQuaternion::from_axis_angle(&Vector3::z_axis(), y) * down,
        )
    };
    let nj = (duration * JOINT_HZ).floor() as usize + 1;
    let mut q = home_q.clone();
    for _ in 0..50 {
        q = ik_step(&chain, &q, &target_at(0.0), &home_q).0;
    }
    let mut ts = Vec::with_capacity(nj);
    let mut qs: Vec<Vec<f64>> = Vec::with_capacity(nj);
    let jn = Normal::new(0.0, 2e-5).expect("sigma");
    let mut max_ik_error_m: f64 = 0.0;
    for i in 0..nj {
        let t = i as f64 / JOINT_HZ;
        let tg = target_at(t);
        for _ in 0..4 {
            let (nq, e) = ik_step(&chain, &q, &tg, &home_q);
            q = nq;
            if e < 1e-8 {
                break;
            }
        }
        max_ik_error_m =
            max_ik_error_m.max((chain.fk(&q).translation.vector - tg.translation.vector).norm());
        ts.push(t);
        qs.push(q.iter().map(|x| x + jn.sample(&mut rng)).collect());
    }
    let aperture = gripper.then(|| {
        ts.iter()
            .map(|&t| {
                let cmd = scalar_at(&b.grip, t, OPEN);
                // the fingers stop at the part while it is between them
                if loads.between(t) {
                    cmd.max(size)
                } else {
                    cmd.max(0.0)
                }
            })
            .collect()
    });

    // the wrench: world-frame loads, then the untared sensor
    let tool_kg = rng.gen_range(0.4..1.2);
    let bias = Vector3::new(
        rng.gen_range(-3.0..3.0),
        rng.gen_range(-3.0..3.0),
        rng.gen_range(-3.0..3.0),
    );
    let drift = rng.gen_range(-0.03..0.03);
    let nf = Normal::new(0.0, 0.05).expect("sigma");
    let nt = Normal::new(0.0, 0.004).expect("sigma");
    let tool_at = |t: f64| -> Isometry3<f64> {
        let k = ((t * JOINT_HZ).floor() as usize).min(qs.len() - 1);
        let k1 = (k + 1).min(qs.len() - 1);
        let f = (t * JOINT_HZ - k as f64).clamp(0.0, 1.0);
        let qi: Vec<f64> = qs[k]
            .iter()
            .zip(&qs[k1])
            .map(|(a, c)| a * (1.0 - f) + c * f)
            .collect();
        chain.fk(&qi)
    };
    let slip_at = |t: f64| {
        loads
            .slip
            .map_or(0.0, |[s, dz]| dz * min_jerk((t - s) / 0.15))
    };
    let nw = (duration * WRENCH_HZ).floor() as usize + 1;
    let mut wrench_t = Vec::with_capacity(nw);
    let mut wrench = Vec::with_capacity(nw);
    for i in 0..nw {
        let t = i as f64 / WRENCH_HZ;
        let pose = tool_at(t);
        let z = pose.translation.z;
        let mut f = Vector3::new(0.0, 0.0, -tool_kg * G);
        if loads.held(t) && loads.mass > 0.0 {
            let h = 0.01;
            let zz = |x: f64| tool_at(x.max(0.0)).translation.z;
            let acc = (zz(t + h) - 2.0 * z + zz(t - h)) / (h * h)
                - (slip_at(t + h) - 2.0 * slip_at(t) + slip_at(t - h)) / (h * h);
            let share = loads
                .support_z
                .map_or(0.0, |sz| ((sz + 0.004 - z) / 0.004).clamp(0.0, 1.0));
            f.z -= loads.mass * (G + acc) * (1.0 - share);
            if let Some([ts, _]) = loads.slip {
                let dt = t - ts;
                if (0.0..0.3).contains(&dt) {
                    f.z += loads.mass
                        * G
                        * 0.3
                        * (std::f64::consts::TAU * 15.0 * dt).sin()
                        * (-dt / 0.05).exp();
                }
            }
        }
        if let Some([t0, t1, force]) = loads.pull
            && t >= t0
            && t < t1
        {
            f.z -= force * ((t - t0) / (t1 - t0)).powf(1.5);
        }
        for &r in &loads.rings {
            let dt = t - r;
            if (0.0..0.2).contains(&dt) {
                f.z += (loads.mass * G * 0.4 + 2.0)
                    * (std::f64::consts::TAU * 12.0 * dt).sin()
                    * (-dt / 0.04).exp();
            }
        }
        if let Some(sf) = loads.surface
            && t < sf.until
            && z < sf.z
        {
            let n = sf.stiffness * (sf.z - z);
            f.z += n;
            // friction against the wipe's motion
            let v = (tool_at(t + 0.005).translation.vector
                - tool_at((t - 0.005).max(0.0)).translation.vector)
                / 0.01;
            let vxy = Vector3::new(v.x, v.y, 0.0);
            if vxy.norm() > 1e-3 {
                f -= vxy.normalize() * sf.friction * n * (vxy.norm() / 0.01).min(1.0);
            }
        }
        let fs = pose.rotation.inverse() * f + bias + Vector3::new(0.0, 0.0, drift * t);
        wrench_t.push(t);
        wrench.push([
            fs.x + nf.sample(&mut rng),
            fs.y + nf.sample(&mut rng),
            fs.z + nf.sample(&mut rng),
            nt.sample(&mut rng),
            nt.sample(&mut rng),
            nt.sample(&mut rng),
        ]);
    }
    FamilyEpisode {
        family,
        joint_names: chain.joint_names().to_vec(),
        duration_s: duration,
        t: ts,
        q: qs,
        aperture,
        wrench_t,
        wrench,
        phases,
        attempts,
        max_ik_error_m,
    }
}

/// When a min-jerk move from `z0` (at `t0`, lasting `d`) to `z1` passes `z`, if it does.
fn solve(t0: f64, d: f64, z0: f64, z1: f64, z: f64) -> Option<f64> {
    if (z1 - z0).abs() < 1e-9 || !(0.0..=1.0).contains(&((z - z0) / (z1 - z0))) {
        return None;
    }
    Some(solve_min_jerk_time(t0, t0 + d, z0, z1, z))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_home_points_the_tool_down_and_ik_tracks_every_family() {
        let c = ur_like();
        let home = c.fk(&UR_HOME);
        let z = home.rotation * Vector3::z();
        assert!(z.z < -0.99, "tool axis {z:?}");
        for f in Family::ALL {
            let ep = generate(f, 7, 0);
            assert_eq!(ep.q.len(), ep.t.len());
            assert!(
                ep.duration_s > 5.0 && ep.duration_s < 25.0,
                "{f:?} {}",
                ep.duration_s
            );
            // every span is ordered and the spans tile the episode
            assert_eq!(ep.phases[0].start_s, 0.0);
            for w in ep.phases.windows(2) {
                assert!((w[0].end_s - w[1].start_s).abs() < 1e-12, "{f:?}");
                assert!(w[1].start_s > w[0].start_s, "{f:?} {:?}", ep.phases);
            }
            assert_eq!(f.task_agnostic(), ep.attempts.is_empty(), "{f:?}");
            assert_eq!(f == Family::Wipe, ep.aperture.is_none());
            if f == Family::Regrasp {
                assert_eq!(ep.attempts.len(), 2);
                assert_eq!(ep.outcome(), Some(Outcome::Success));
            }
            // the IK followed the plan: the tool is never far from home's neighbourhood and the
            // joints move smoothly (no IK jumps between samples)
            for w in ep.q.windows(2) {
                let step = w[0]
                    .iter()
                    .zip(&w[1])
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max);
                assert!(step < 0.05, "{f:?}: joint step {step} rad at 125 Hz");
            }
            assert!(
                ep.max_ik_error_m < 1e-3,
                "{f:?}: IK off by {} m",
                ep.max_ik_error_m
            );
            assert_eq!(generate(f, 7, 0).q, ep.q, "deterministic");
            // the 5-DoF arm holds the tool vertical and turns it: the same tasks are in reach
            let five = generate_on(&Robot::five_dof(), f, 7, 0);
            assert_eq!(five.q[0].len(), 5);
            assert!(
                five.max_ik_error_m < 1e-3,
                "{f:?}: 5-DoF IK off by {} m",
                five.max_ik_error_m
            );
        }
    }
}

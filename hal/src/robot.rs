//! A robot's kinematics from its URDF (the description every robot ships), parsed with the
//! `urdf-rs` crate: serial chains from a base link to a tool link through any number of
//! revolute, continuous, prismatic and fixed joints, with their origins, axes and limits.
//! One model for every part that needs the arm's pose (the annotator's end-effector speed and
//! height, the export, the viewer's drawing); the simulator's modified-DH [`ArmModel`] is the
//! other implementation of [`Kinematics`].
//!
//! Joint positions come in whatever unit their publisher uses: [`JointUnits`] says which (LeRobot
//! SO-100/101 data are degrees), and [`Kinematics::fk`] always takes SI (rad, m).

use crate::kinematics::ArmModel;
use nalgebra::{Isometry3, Translation3, Unit, UnitQuaternion, Vector3};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Forward kinematics of one arm, in SI units (rad, m).
pub trait Kinematics: Send + Sync {
    /// The movable joints, in chain order (what `q` holds).
    fn joint_names(&self) -> &[String];
    /// Pose of the tool in the base link's (world) frame.
    fn fk(&self, q: &[f64]) -> Isometry3<f64>;
    /// The base, every joint's origin and the tool, for drawing.
    fn link_origins(&self, q: &[f64]) -> Vec<Vector3<f64>>;
}

impl Kinematics for ArmModel {
    fn joint_names(&self) -> &[String] {
        &self.joint_names
    }
    fn fk(&self, q: &[f64]) -> Isometry3<f64> {
        ArmModel::fk(self, q)
    }
    fn link_origins(&self, q: &[f64]) -> Vec<Vector3<f64>> {
        ArmModel::link_origins(self, q)
    }
}

/// The unit joint positions are published in.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum JointUnits {
    /// Radians (revolute) and meters (prismatic): ROS's convention.
    #[default]
    Rad,
    /// Degrees (revolute) and millimeters (prismatic), as LeRobot's Feetech arms publish.
    Deg,
}

impl JointUnits {
    /// SI value of a position published in these units, for a joint of `kind`.
    pub fn to_si(self, kind: JointKind, x: f64) -> f64 {
        match (self, kind) {
            (JointUnits::Rad, _) => x,
            (JointUnits::Deg, JointKind::Prismatic) => x * 1e-3,
            (JointUnits::Deg, JointKind::Revolute) => x.to_radians(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JointKind {
    /// `revolute` and `continuous`.
    Revolute,
    Prismatic,
}

/// A movable joint of a chain.
#[derive(Clone, Debug, PartialEq)]
pub struct ChainJoint {
    pub name: String,
    pub kind: JointKind,
    /// Limits in SI units (`None` for continuous joints and URDFs that give none).
    pub limits: Option<[f64; 2]>,
}

#[derive(Clone, Debug)]
enum Step {
    /// A fixed transform (a fixed joint, or a movable joint's origin).
    Fixed(Isometry3<f64>),
    /// Motion of movable joint `index` about / along `axis`.
    Move {
        index: usize,
        kind: JointKind,
        axis: Unit<Vector3<f64>>,
    },
}

/// A serial chain from `base_link` to `tool_link` of a URDF.
#[derive(Clone, Debug)]
pub struct Chain {
    pub robot: String,
    pub base_link: String,
    pub tool_link: String,
    pub joints: Vec<ChainJoint>,
    names: Vec<String>,
    steps: Vec<Step>,
}

fn pose(p: &urdf_rs::Pose) -> Isometry3<f64> {
    let [x, y, z] = *p.xyz;
    let [r, pi, ya] = *p.rpy;
    // URDF rpy: fixed-axis roll about x, then pitch about y, then yaw about z
    Isometry3::from_parts(
        Translation3::new(x, y, z),
        UnitQuaternion::from_euler_angles(r, pi, ya),
    )
}

/// A parsed URDF: its links and joints by name, for building chains.
#[derive(Clone, Debug)]
pub struct Urdf {
    robot: urdf_rs::Robot,
}

impl Urdf {
    pub fn parse(text: &str) -> Result<Urdf, String> {
        let robot = urdf_rs::read_from_string(text).map_err(|e| format!("URDF: {e}"))?;
        if robot.joints.is_empty() {
            return Err(format!("URDF {:?}: no joints", robot.name));
        }
        Ok(Urdf { robot })
    }

    pub fn load(path: &Path) -> Result<Urdf, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Urdf::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn name(&self) -> &str {
        &self.robot.name
    }

    /// The joint whose child is `link`.
    fn parent_joint(&self, link: &str) -> Option<&urdf_rs::Joint> {
        self.robot.joints.iter().find(|j| j.child.link == link)
    }

    /// The root link (a parent that is nobody's child).
    pub fn root(&self) -> Option<&str> {
        let children: std::collections::HashSet<&str> = self
            .robot
            .joints
            .iter()
            .map(|j| j.child.link.as_str())
            .collect();
        self.robot
            .joints
            .iter()
            .map(|j| j.parent.link.as_str())
            .find(|l| !children.contains(l))
    }

    /// Links that are no joint's parent, each with the number of movable joints from the root
    /// (the candidates for a tool link, most movable first).
    pub fn leaves(&self) -> Vec<(String, usize)> {
        let parents: std::collections::HashSet<&str> = self
            .robot
            .joints
            .iter()
            .map(|j| j.parent.link.as_str())
            .collect();
        let mut out: Vec<(String, usize)> = self
            .robot
            .joints
            .iter()
            .map(|j| j.child.link.as_str())
            .filter(|l| !parents.contains(l))
            .map(|l| {
                let movable = self.chain(None, Some(l)).map_or(0, |c| c.joints.len());
                (l.to_string(), movable)
            })
            .collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }

    /// The chain from `base` (default: the root) to `tool` (default: the leaf with the most
    /// movable joints before it; ties broken by name).
    pub fn chain(&self, base: Option<&str>, tool: Option<&str>) -> Result<Chain, String> {
        let base = match base {
            Some(b) => b.to_string(),
            None => self
                .root()
                .ok_or_else(|| format!("URDF {:?}: no root link (a cycle?)", self.name()))?
                .to_string(),
        };
        let tool = match tool {
            Some(t) => t.to_string(),
            None => self
                .leaves()
                .first()
                .map(|l| l.0.clone())
                .ok_or_else(|| format!("URDF {:?}: no leaf link", self.name()))?,
        };
        let links: Vec<&str> = self.robot.links.iter().map(|l| l.name.as_str()).collect();
        for l in [&base, &tool] {
            if !links.contains(&l.as_str()) {
                return Err(format!(
                    "URDF {:?} has no link {l:?} (links: {})",
                    self.name(),
                    links.join(", ")
                ));
            }
        }
        // walk up from the tool to the base
        let mut path: Vec<&urdf_rs::Joint> = Vec::new();
        let mut cur = tool.as_str();
        while cur != base {
            let j = self.parent_joint(cur).ok_or_else(|| {
                format!(
                    "URDF {:?}: link {tool:?} is not below {base:?} (reached the root at {cur:?})",
                    self.name()
                )
            })?;
            path.push(j);
            cur = &j.parent.link;
            if path.len() > self.robot.joints.len() {
                return Err(format!("URDF {:?}: the joints form a cycle", self.name()));
            }
        }
        path.reverse();
        let mut steps = Vec::new();
        let mut joints = Vec::new();
        for j in path {
            steps.push(Step::Fixed(pose(&j.origin)));
            let kind = match j.joint_type {
                urdf_rs::JointType::Fixed => continue,
                urdf_rs::JointType::Revolute | urdf_rs::JointType::Continuous => {
                    JointKind::Revolute
                }
                urdf_rs::JointType::Prismatic => JointKind::Prismatic,
                ref t => {
                    return Err(format!(
                        "URDF {:?}: joint {:?} is {t:?}; a chain takes revolute, continuous, prismatic and fixed joints",
                        self.name(),
                        j.name
                    ));
                }
            };
            let axis = Vector3::from(*j.axis.xyz);
            let axis = Unit::try_new(axis, 1e-9).ok_or_else(|| {
                format!("URDF {:?}: joint {:?} has a zero axis", self.name(), j.name)
            })?;
            let limited = j.joint_type != urdf_rs::JointType::Continuous
                && (j.limit.lower != 0.0 || j.limit.upper != 0.0);
            steps.push(Step::Move {
                index: joints.len(),
                kind,
                axis,
            });
            joints.push(ChainJoint {
                name: j.name.clone(),
                kind,
                limits: limited.then_some([j.limit.lower, j.limit.upper]),
            });
        }
        if joints.is_empty() {
            return Err(format!(
                "URDF {:?}: no movable joint between {base:?} and {tool:?}",
                self.name()
            ));
        }
        Ok(Chain {
            robot: self.name().to_string(),
            base_link: base,
            tool_link: tool,
            names: joints.iter().map(|j| j.name.clone()).collect(),
            joints,
            steps,
        })
    }
}

impl Chain {
    fn walk(&self, q: &[f64], mut at_joint: impl FnMut(&Isometry3<f64>)) -> Isometry3<f64> {
        let mut t = Isometry3::identity();
        for s in &self.steps {
            match s {
                Step::Fixed(p) => t *= p,
                Step::Move { index, kind, axis } => {
                    at_joint(&t);
                    let x = q.get(*index).copied().unwrap_or(0.0);
                    t *= match kind {
                        JointKind::Revolute => Isometry3::from_parts(
                            Translation3::identity(),
                            UnitQuaternion::from_axis_angle(axis, x),
                        ),
                        JointKind::Prismatic => Isometry3::from_parts(
                            Translation3::from(axis.into_inner() * x),
                            UnitQuaternion::identity(),
                        ),
                    };
                }
            }
        }
        t
    }

    /// Where each of the chain's joints is in a joint-state name list (`None`: a joint the
    /// message does not name).
    pub fn indices_in(&self, names: &[String]) -> Vec<Option<usize>> {
        let at: HashMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        self.names
            .iter()
            .map(|n| at.get(n.as_str()).copied())
            .collect()
    }
}

impl Kinematics for Chain {
    fn joint_names(&self) -> &[String] {
        &self.names
    }
    fn fk(&self, q: &[f64]) -> Isometry3<f64> {
        self.walk(q, |_| {})
    }
    fn link_origins(&self, q: &[f64]) -> Vec<Vector3<f64>> {
        let mut out = vec![Vector3::zeros()];
        let tool = self.walk(q, |t| {
            let p = t.translation.vector;
            if out.last().is_none_or(|l| (l - p).norm() > 1e-9) {
                out.push(p);
            }
        });
        out.push(tool.translation.vector);
        out
    }
}

/// Where a robot's arm is described (`[robot]` in the annotator's config, `--urdf` on the
/// command line): a URDF and the chain in it, and the unit of the recorded joint positions.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RobotConfig {
    /// The robot's URDF (xacro already expanded). Relative paths are taken from the config
    /// file's directory. Unset: the modified-DH `[arm]` (the simulator's by default).
    pub urdf: Option<std::path::PathBuf>,
    /// The chain's first link (default: the URDF's root link).
    pub base_link: Option<String>,
    /// The chain's tool link (default: the leaf link with the most movable joints before it;
    /// name it for a bimanual robot, e.g. `right_tool0`).
    pub tool_link: Option<String>,
    /// The unit of the recorded joint positions: `rad` (ROS: rad, m) or `deg` (deg, mm).
    pub joint_units: JointUnits,
}

/// An arm ready for use: its kinematics, the unit of its recorded joint positions, and the
/// kind of each joint (for converting them).
#[derive(Clone)]
pub struct RobotArm {
    pub kin: std::sync::Arc<dyn Kinematics>,
    pub kinds: Vec<JointKind>,
    pub units: JointUnits,
    /// What the arm is, for provenance and messages (`URDF ur_like: base_link → tool0`).
    pub describe: String,
}

impl std::fmt::Debug for RobotArm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RobotArm({}, {:?})",
            self.describe,
            self.kin.joint_names()
        )
    }
}

impl RobotArm {
    pub fn joint_names(&self) -> &[String] {
        self.kin.joint_names()
    }

    /// Recorded positions (in [`RobotArm::units`]) → SI, in place.
    pub fn to_si(&self, q: &mut [f64]) {
        for (x, k) in q.iter_mut().zip(&self.kinds) {
            *x = self.units.to_si(*k, *x);
        }
    }

    /// A modified-DH arm (every joint revolute).
    pub fn dh(arm: ArmModel, units: JointUnits) -> RobotArm {
        let describe = format!("modified-DH arm of {} joints", arm.links.len());
        RobotArm {
            kinds: vec![JointKind::Revolute; arm.links.len()],
            kin: std::sync::Arc::new(arm),
            units,
            describe,
        }
    }
}

impl RobotConfig {
    /// The arm this config describes; `dh` when it names no URDF. `base_dir`: where a relative
    /// `urdf` path starts.
    pub fn arm(&self, dh: &ArmModel, base_dir: Option<&Path>) -> Result<RobotArm, String> {
        let Some(p) = &self.urdf else {
            return Ok(RobotArm::dh(dh.clone(), self.joint_units));
        };
        let path = match base_dir {
            Some(d) if p.is_relative() => d.join(p),
            _ => p.clone(),
        };
        let u = Urdf::load(&path)?;
        let c = u
            .chain(self.base_link.as_deref(), self.tool_link.as_deref())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let describe = format!("URDF {}: {} → {}", c.robot, c.base_link, c.tool_link);
        Ok(RobotArm {
            kinds: c.joints.iter().map(|j| j.kind).collect(),
            kin: std::sync::Arc::new(c),
            units: self.joint_units,
            describe,
        })
    }
}

/// The simulator's arm (the same geometry as [`ArmModel::sim_default`]) as a URDF: what a
/// user of another robot writes, and the test that the URDF chain and the DH model agree.
pub fn sim_arm_urdf(prefix: &str) -> String {
    let arm = ArmModel::sim_default(prefix);
    let mut s = String::from("<?xml version=\"1.0\"?>\n<robot name=\"demotape_sim_arm\">\n");
    s.push_str("  <link name=\"world\"/>\n  <link name=\"base\"/>\n");
    s.push_str(&format!(
        "  <joint name=\"mount\" type=\"fixed\"><parent link=\"world\"/><child link=\"base\"/><origin xyz=\"{} {} {}\" rpy=\"0 0 0\"/></joint>\n",
        arm.base_xyz[0], arm.base_xyz[1], arm.base_xyz[2]
    ));
    let mut parent = "base".to_string();
    for (i, (l, name)) in arm.links.iter().zip(&arm.joint_names).enumerate() {
        // modified DH: RotX(alpha) TransX(a) RotZ(q) TransZ(d); a URDF joint is its origin
        // then the motion, so each link's TransZ(d) goes into the next joint's origin
        let link = format!("link{}", i + 1);
        // TransZ(d_prev) RotX(alpha) TransX(a) = Trans(a, 0, d_prev) RotX(alpha): TransX
        // commutes with RotX (the sim arm has no theta offsets)
        let prev_d = if i == 0 { 0.0 } else { arm.links[i - 1].d };
        s.push_str(&format!("  <link name=\"{link}\"/>\n"));
        s.push_str(&format!(
            "  <joint name=\"{name}\" type=\"revolute\"><parent link=\"{parent}\"/><child link=\"{link}\"/><origin xyz=\"{} 0 {}\" rpy=\"{} 0 0\"/><axis xyz=\"0 0 1\"/><limit lower=\"{}\" upper=\"{}\" effort=\"50\" velocity=\"2\"/></joint>\n",
            l.a, prev_d, l.alpha, arm.limits[i][0], arm.limits[i][1]
        ));
        parent = link;
    }
    let last_d = arm.links.last().map_or(0.0, |l| l.d);
    s.push_str("  <link name=\"tool\"/>\n");
    s.push_str(&format!(
        "  <joint name=\"tcp\" type=\"fixed\"><parent link=\"{parent}\"/><child link=\"tool\"/><origin xyz=\"0 0 {}\" rpy=\"0 0 {}\"/></joint>\n",
        last_d + arm.tool_d,
        arm.tool_yaw
    ));
    s.push_str("</robot>\n");
    s
}

/// A UR5e-like 6-DoF arm (the published UR5e joint origins, rounded), with a fixed tool link:
/// the simulator's second robot ([`crate::sim::family`]) and the tests' 6-DoF arm.
pub const UR_LIKE_URDF: &str = r#"<?xml version="1.0"?>
<robot name="ur_like">
  <link name="base_link"/><link name="shoulder_link"/><link name="upper_arm_link"/>
  <link name="forearm_link"/><link name="wrist_1_link"/><link name="wrist_2_link"/>
  <link name="wrist_3_link"/><link name="tool0"/>
  <joint name="shoulder_pan_joint" type="revolute"><parent link="base_link"/><child link="shoulder_link"/>
<origin xyz="0 0 0.1625" rpy="0 0 0"/><axis xyz="0 0 1"/><limit lower="-6.2" upper="6.2" effort="150" velocity="3.1"/></joint>
  <joint name="shoulder_lift_joint" type="revolute"><parent link="shoulder_link"/><child link="upper_arm_link"/>
<origin xyz="0 0 0" rpy="1.570796327 0 0"/><axis xyz="0 0 1"/><limit lower="-6.2" upper="6.2" effort="150" velocity="3.1"/></joint>
  <joint name="elbow_joint" type="revolute"><parent link="upper_arm_link"/><child link="forearm_link"/>
<origin xyz="-0.425 0 0" rpy="0 0 0"/><axis xyz="0 0 1"/><limit lower="-3.1" upper="3.1" effort="150" velocity="3.1"/></joint>
  <joint name="wrist_1_joint" type="revolute"><parent link="forearm_link"/><child link="wrist_1_link"/>
<origin xyz="-0.3922 0 0.1333" rpy="0 0 0"/><axis xyz="0 0 1"/><limit lower="-6.2" upper="6.2" effort="28" velocity="6.2"/></joint>
  <joint name="wrist_2_joint" type="revolute"><parent link="wrist_1_link"/><child link="wrist_2_link"/>
<origin xyz="0 -0.0997 0" rpy="1.570796327 0 0"/><axis xyz="0 0 1"/><limit lower="-6.2" upper="6.2" effort="28" velocity="6.2"/></joint>
  <joint name="wrist_3_joint" type="continuous"><parent link="wrist_2_link"/><child link="wrist_3_link"/>
<origin xyz="0 0.0996 0" rpy="1.570796327 3.141592654 3.141592654"/><axis xyz="0 0 1"/></joint>
  <joint name="flange" type="fixed"><parent link="wrist_3_link"/><child link="tool0"/>
<origin xyz="0 0 0.1" rpy="0 0 0"/></joint>
</robot>"#;

/// A 5-DoF arm: the UR-like arm with its second wrist joint locked at its home angle (a
/// base yaw, three parallel pitch joints and a tool roll, as youBot- or SO-100-style arms
/// are built): it can hold the tool vertical and turn it, not tilt it sideways.
pub fn five_dof_urdf() -> String {
    UR_LIKE_URDF
        .replace("<robot name=\"ur_like\">", "<robot name=\"five_dof\">")
        .replace(
            r#"<joint name="wrist_2_joint" type="revolute"><parent link="wrist_1_link"/><child link="wrist_2_link"/>
<origin xyz="0 -0.0997 0" rpy="1.570796327 0 0"/><axis xyz="0 0 1"/><limit lower="-6.2" upper="6.2" effort="28" velocity="6.2"/></joint>"#,
            r#"<link name="wrist_2_locked"/>
  <joint name="wrist_2_mount" type="fixed"><parent link="wrist_1_link"/><child link="wrist_2_locked"/>
    <origin xyz="0 -0.0997 0" rpy="1.570796327 0 0"/></joint>
  <joint name="wrist_2_lock" type="fixed"><parent link="wrist_2_locked"/><child link="wrist_2_link"/>
    <origin xyz="0 0 0" rpy="0 0 -1.57"/></joint>"#,
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_six_dof_chain_is_found_and_moves_as_its_joints_say() {
        let u = Urdf::parse(UR_LIKE_URDF).unwrap();
        assert_eq!(u.root(), Some("base_link"));
        let c = u.chain(None, None).unwrap();
        assert_eq!(c.tool_link, "tool0");
        assert_eq!(c.joints.len(), 6);
        assert_eq!(c.joint_names()[0], "shoulder_pan_joint");
        assert_eq!(c.joints[5].limits, None, "continuous");
        assert_eq!(c.joints[0].limits, Some([-6.2, 6.2]));
        // the pan joint turns the whole arm about the base's z: the tool's height and its
        // distance from the axis stay, its azimuth turns by the same angle
        let q0 = [0.0, -1.2, 1.0, -0.5, 0.3, 0.0];
        let mut q1 = q0;
        q1[0] = 0.7;
        let (p0, p1) = (c.fk(&q0).translation.vector, c.fk(&q1).translation.vector);
        assert!((p0.z - p1.z).abs() < 1e-12);
        assert!((p0.xy().norm() - p1.xy().norm()).abs() < 1e-12);
        let turned = p1.y.atan2(p1.x) - p0.y.atan2(p0.x);
        let d = (turned - 0.7 + std::f64::consts::PI).rem_euclid(std::f64::consts::TAU)
            - std::f64::consts::PI;
        assert!(d.abs() < 1e-9, "{turned}");
        // origins: base, 6 joints (two coincide at the shoulder), the tool
        let o = c.link_origins(&q0);
        assert_eq!(o[0], Vector3::zeros());
        assert_eq!(*o.last().unwrap(), p0);
        assert!(o.len() >= 6, "{o:?}");
        // a chain to an inner link stops there
        let part = u.chain(Some("base_link"), Some("forearm_link")).unwrap();
        assert_eq!(part.joints.len(), 3);
        let err = u
            .chain(Some("forearm_link"), Some("shoulder_link"))
            .unwrap_err();
        assert!(err.contains("is not below"), "{err}");
        let err = u.chain(None, Some("gripper")).unwrap_err();
        assert!(
            err.contains("no link \"gripper\"") && err.contains("tool0"),
            "{err}"
        );
    }

    #[test]
    fn prismatic_joints_and_units() {
        let text = r#"<robot name="lift"><link name="a"/><link name="b"/><link name="c"/>
          <joint name="z" type="prismatic"><parent link="a"/><child link="b"/><axis xyz="0 0 1"/>
            <limit lower="0" upper="0.5" effort="1" velocity="1"/></joint>
          <joint name="yaw" type="revolute"><parent link="b"/><child link="c"/>
            <origin xyz="0.2 0 0"/><axis xyz="0 0 1"/><limit lower="-3" upper="3" effort="1" velocity="1"/></joint>
        </robot>"#;
        let c = Urdf::parse(text).unwrap().chain(None, None).unwrap();
        let q = [
            JointUnits::Deg.to_si(JointKind::Prismatic, 300.0),
            JointUnits::Deg.to_si(JointKind::Revolute, 90.0),
        ];
        let t = c.fk(&q);
        assert!((t.translation.vector - Vector3::new(0.2, 0.0, 0.3)).norm() < 1e-12);
        let x = t.rotation * Vector3::x();
        assert!((x - Vector3::y()).norm() < 1e-12, "{x:?}");
        assert!(Urdf::parse("<robot name=\"x\"></robot>").is_err());
        assert!(Urdf::parse("not xml").is_err());
    }

    #[test]
    fn the_sim_arm_as_urdf_equals_its_dh_model() {
        let dh = ArmModel::sim_default("right_arm_");
        let u = Urdf::parse(&sim_arm_urdf("right_arm_")).unwrap();
        let c = u.chain(None, None).unwrap();
        assert_eq!(c.joint_names(), dh.joint_names.as_slice());
        let mut q = ArmModel::home().as_slice().to_vec();
        for k in 0..20 {
            for (i, x) in q.iter_mut().enumerate() {
                *x += 0.05 * ((k * 7 + i * 3) % 11) as f64 - 0.25;
            }
            let (a, b) = (Kinematics::fk(&dh, &q), c.fk(&q));
            assert!(
                (a.translation.vector - b.translation.vector).norm() < 1e-9,
                "{a:?} {b:?}"
            );
            assert!(a.rotation.angle_to(&b.rotation) < 1e-9);
        }
    }
}

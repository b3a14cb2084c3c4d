//! Serial-arm kinematics (modified Denavit–Hartenberg, Craig's convention) with nalgebra.
//!
//! The simulated robot's right arm is a 7-DoF arm with Franka-Panda-like geometry; the
//! annotator uses the same [`ArmModel`] (from config) to compute the end-effector pose from
//! recorded joint states.

use nalgebra::{Isometry3, Matrix6, SMatrix, Translation3, UnitQuaternion, Vector3, Vector6};
use serde::{Deserialize, Serialize};

/// One link in modified DH parameters: `RotX(alpha) * TransX(a) * RotZ(theta + q) * TransZ(d)`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct DhLink {
    pub a: f64,
    pub d: f64,
    pub alpha: f64,
    #[serde(default)]
    pub theta_offset: f64,
}

/// A serial arm: base pose in the world, links, and a fixed tool transform after the last link.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ArmModel {
    pub joint_names: Vec<String>,
    /// Base position in the world frame (meters); base orientation is the world's.
    pub base_xyz: [f64; 3],
    pub links: Vec<DhLink>,
    /// Distance along the last link's z axis to the tool center point (between the fingertips).
    pub tool_d: f64,
    /// Rotation of the tool about its z axis relative to the flange (radians).
    pub tool_yaw: f64,
    /// Joint limits (radians), one pair per link.
    pub limits: Vec<[f64; 2]>,
}

pub type Dof7 = SMatrix<f64, 7, 1>;

impl ArmModel {
    /// The simulator's default arm (Panda-like geometry, mounted at the table edge).
    pub fn sim_default(prefix: &str) -> Self {
        use std::f64::consts::FRAC_PI_2 as H;
        let links = vec![
            DhLink {
                a: 0.0,
                d: 0.333,
                alpha: 0.0,
                theta_offset: 0.0,
            },
            DhLink {
                a: 0.0,
                d: 0.0,
                alpha: -H,
                theta_offset: 0.0,
            },
            DhLink {
                a: 0.0,
                d: 0.316,
                alpha: H,
                theta_offset: 0.0,
            },
            DhLink {
                a: 0.0825,
                d: 0.0,
                alpha: H,
                theta_offset: 0.0,
            },
            DhLink {
                a: -0.0825,
                d: 0.384,
                alpha: -H,
                theta_offset: 0.0,
            },
            DhLink {
                a: 0.0,
                d: 0.0,
                alpha: H,
                theta_offset: 0.0,
            },
            DhLink {
                a: 0.088,
                d: 0.0,
                alpha: H,
                theta_offset: 0.0,
            },
        ];
        ArmModel {
            joint_names: (1..=7).map(|i| format!("{prefix}joint{i}")).collect(),
            base_xyz: [-0.45, 0.0, 0.0],
            links,
            tool_d: 0.107 + 0.1034,
            tool_yaw: -std::f64::consts::FRAC_PI_4,
            limits: vec![
                [-2.8973, 2.8973],
                [-1.7628, 1.7628],
                [-2.8973, 2.8973],
                [-3.0718, -0.0698],
                [-2.8973, 2.8973],
                [-0.0175, 3.7525],
                [-2.8973, 2.8973],
            ],
        }
    }

    /// A comfortable home configuration for the default arm.
    pub fn home() -> Dof7 {
        Dof7::from_column_slice(&[0.0, -0.5, 0.0, -2.2, 0.0, 1.75, 0.785])
    }

    /// Pose of the tool center point in the world frame.
    pub fn fk(&self, q: &[f64]) -> Isometry3<f64> {
        let mut t = Isometry3::from_parts(
            Translation3::new(self.base_xyz[0], self.base_xyz[1], self.base_xyz[2]),
            UnitQuaternion::identity(),
        );
        for (link, qi) in self.links.iter().zip(q) {
            t *= link_transform(link, *qi);
        }
        t * Isometry3::from_parts(
            Translation3::new(0.0, 0.0, self.tool_d),
            UnitQuaternion::from_axis_angle(&Vector3::z_axis(), self.tool_yaw),
        )
    }

    /// World positions of the base and of every link frame's origin, then the tool center
    /// point (for drawing the arm).
    pub fn link_origins(&self, q: &[f64]) -> Vec<Vector3<f64>> {
        let mut t = Isometry3::translation(self.base_xyz[0], self.base_xyz[1], self.base_xyz[2]);
        let mut out = vec![t.translation.vector];
        for (link, qi) in self.links.iter().zip(q) {
            t *= link_transform(link, *qi);
            out.push(t.translation.vector);
        }
        out.push(
            (t * Isometry3::translation(0.0, 0.0, self.tool_d))
                .translation
                .vector,
        );
        out
    }

    /// One damped-least-squares IK step toward `target` (position and orientation), with a
    /// null-space pull toward `rest`. Returns the new configuration and the remaining error norm.
    pub fn ik_step(&self, q: &Dof7, target: &Isometry3<f64>, rest: &Dof7) -> (Dof7, f64) {
        let cur = self.fk(q.as_slice());
        let err = pose_error(&cur, target);
        let mut jac = SMatrix::<f64, 6, 7>::zeros();
        let h = 1e-6;
        for j in 0..7 {
            let mut qp = *q;
            qp[j] += h;
            let e = pose_error(&self.fk(qp.as_slice()), &cur);
            // pose_error(a, b) is b - a in the tangent space; we want d(pose)/dq
            jac.set_column(j, &(-e / h));
        }
        let lambda2 = 1e-4;
        let jjt: Matrix6<f64> = jac * jac.transpose() + Matrix6::identity() * lambda2;
        let inv = jjt.try_inverse().unwrap_or_else(Matrix6::identity);
        let jpinv = jac.transpose() * inv;
        let dq_task = jpinv * err;
        let null = SMatrix::<f64, 7, 7>::identity() - jpinv * jac;
        let dq_null = null * ((rest - q) * 0.05);
        let mut out = q + dq_task + dq_null;
        for (i, lim) in self.limits.iter().enumerate() {
            out[i] = out[i].clamp(lim[0], lim[1]);
        }
        (out, err.norm())
    }
}

fn link_transform(l: &DhLink, q: f64) -> Isometry3<f64> {
    let rx = Isometry3::from_parts(
        Translation3::identity(),
        UnitQuaternion::from_axis_angle(&Vector3::x_axis(), l.alpha),
    );
    let tx = Isometry3::translation(l.a, 0.0, 0.0);
    let rz = Isometry3::from_parts(
        Translation3::identity(),
        UnitQuaternion::from_axis_angle(&Vector3::z_axis(), q + l.theta_offset),
    );
    let tz = Isometry3::translation(0.0, 0.0, l.d);
    rx * tx * rz * tz
}

/// Error from `cur` to `target`: position difference and rotation vector, world frame.
fn pose_error(cur: &Isometry3<f64>, target: &Isometry3<f64>) -> Vector6<f64> {
    let dp = target.translation.vector - cur.translation.vector;
    let dr = (target.rotation * cur.rotation.inverse()).scaled_axis();
    Vector6::new(dp.x, dp.y, dp.z, dr.x, dr.y, dr.z)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ik_converges_to_a_reachable_pose() {
        let arm = ArmModel::sim_default("right_");
        let home = ArmModel::home();
        let start = arm.fk(home.as_slice());
        let target = Isometry3::from_parts(Translation3::new(0.05, -0.1, 0.10), start.rotation);
        let mut q = home;
        let mut err = f64::MAX;
        for _ in 0..200 {
            (q, err) = arm.ik_step(&q, &target, &home);
        }
        assert!(err < 1e-4, "residual {err}");
        let reached = arm.fk(q.as_slice());
        assert!((reached.translation.vector - target.translation.vector).norm() < 1e-4);
    }

    #[test]
    fn home_points_the_tool_down_over_the_table() {
        let arm = ArmModel::sim_default("right_");
        let p = arm.fk(ArmModel::home().as_slice());
        let z = p.rotation * Vector3::z();
        assert!(z.z < -0.95, "tool z axis {z:?}");
        assert!(p.translation.z > 0.1 && p.translation.x > -0.2, "{p:?}");
    }
}

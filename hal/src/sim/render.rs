//! A small software renderer for the simulated cameras: the table (checkered, with the green
//! target square), the floor, the object, the arm links and the gripper, seen through a
//! pinhole camera in the ROS optical convention (x right, y down, z forward).
//!
//! Planes are ray-cast per pixel (incrementally along each row); boxes are rasterized as
//! triangles with a z-buffer, so RGB and depth come out of the same pass and agree.

use nalgebra::{Isometry3, Matrix3, Point3, UnitQuaternion, Vector3};

/// Pinhole intrinsics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Intrinsics {
    pub width: u32,
    pub height: u32,
    pub fx: f64,
    pub fy: f64,
    pub cx: f64,
    pub cy: f64,
}

impl Intrinsics {
    /// Square pixels with the given horizontal field of view (radians).
    pub fn with_hfov(width: u32, height: u32, hfov: f64) -> Self {
        let fx = width as f64 / 2.0 / (hfov / 2.0).tan();
        Intrinsics {
            width,
            height,
            fx,
            fy: fx,
            cx: width as f64 / 2.0,
            cy: height as f64 / 2.0,
        }
    }
}

/// Camera pose (camera frame -> world) looking from `eye` at `target`, world up = +z.
pub fn look_at(eye: Vector3<f64>, target: Vector3<f64>) -> Isometry3<f64> {
    let z = (target - eye).normalize();
    let up = if z.z.abs() > 0.99 {
        Vector3::x()
    } else {
        Vector3::z()
    };
    let x = z.cross(&up).normalize();
    let y = z.cross(&x);
    let m = Matrix3::from_columns(&[x, y, z]);
    let rot = UnitQuaternion::from_matrix(&m);
    Isometry3::from_parts(eye.into(), rot)
}

/// An oriented box to draw.
#[derive(Clone, Copy, Debug)]
pub struct SceneBox {
    pub pose: Isometry3<f64>,
    pub half: Vector3<f64>,
    pub color: [u8; 3],
}

/// Everything visible in one frame.
#[derive(Clone, Debug, Default)]
pub struct SceneGeom {
    pub boxes: Vec<SceneBox>,
    /// Center and half size of the green target square on the table.
    pub target_xy: [f64; 2],
    pub target_half: f64,
}

const TABLE_X: [f64; 2] = [-0.6, 0.6];
const TABLE_Y: [f64; 2] = [-0.7, 0.7];
const FLOOR_Z: f64 = -0.75;
const NEAR: f64 = 0.01;

/// Scratch buffers reused across frames of one camera.
#[derive(Default)]
pub struct Renderer {
    zbuf: Vec<f32>,
    /// Gaussian noise values (σ = `noise_sigma`), read from a per-frame offset.
    noise: Vec<i8>,
    noise_sigma: f64,
}

impl Renderer {
    /// Add camera sensor noise: N(0, σ²) levels on every RGB byte, N(0, (σ/2)²) mm on every
    /// valid depth pixel. The values come from a fixed table (built once, seeded) read from
    /// an offset that `frame_seed` picks, so frames differ, the result is deterministic, and
    /// the cost is one saturating add per byte.
    pub fn add_noise(
        &mut self,
        sigma: f64,
        frame_seed: u64,
        rgb: &mut [u8],
        depth_mm: Option<&mut Vec<u8>>,
    ) {
        use rand::{Rng, SeedableRng};
        const SPARE: usize = 1 << 20;
        let need = rgb.len() + SPARE;
        if self.noise.len() < need || self.noise_sigma != sigma {
            let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(0x5e75_0a15e);
            let n = rand_distr::Normal::new(0.0, sigma).expect("finite sigma");
            self.noise = (0..need)
                .map(|_| r.sample::<f64, _>(n).round().clamp(-127.0, 127.0) as i8)
                .collect();
            self.noise_sigma = sigma;
        }
        // splitmix64 of the frame seed picks where in the table this frame starts
        let mut z = frame_seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let off = (z % SPARE as u64) as usize;
        for (p, n) in rgb.iter_mut().zip(&self.noise[off..]) {
            *p = p.saturating_add_signed(*n);
        }
        if let Some(d) = depth_mm {
            let off2 = (off + 7919) % SPARE;
            for (px, n) in d.chunks_exact_mut(2).zip(&self.noise[off2..]) {
                let mm = u16::from_le_bytes([px[0], px[1]]);
                if mm != 0 {
                    let v = (mm as i32 + (*n as i32) / 2).clamp(1, u16::MAX as i32) as u16;
                    px.copy_from_slice(&v.to_le_bytes());
                }
            }
        }
    }

    /// Render into `rgb` (rgb8, `w*h*3`) and, if given, `depth_mm` (16UC1 little-endian bytes,
    /// `w*h*2`, millimeters, 0 = no return).
    pub fn render(
        &mut self,
        k: &Intrinsics,
        cam: &Isometry3<f64>,
        scene: &SceneGeom,
        rgb: &mut Vec<u8>,
        depth_mm: Option<&mut Vec<u8>>,
    ) {
        let (w, h) = (k.width as usize, k.height as usize);
        rgb.clear();
        rgb.resize(w * h * 3, 0);
        self.zbuf.clear();
        self.zbuf.resize(w * h, f32::INFINITY);
        self.background(k, cam, scene, rgb);
        let light = Vector3::new(0.3, 0.2, 1.0).normalize();
        let inv = cam.inverse();
        for b in &scene.boxes {
            self.draw_box(k, cam, &inv, b, &light, rgb);
        }
        if let Some(d) = depth_mm {
            d.clear();
            d.reserve(w * h * 2);
            for &z in &self.zbuf {
                let mm = if z.is_finite() && z < 10.0 {
                    (z * 1000.0).round() as u16
                } else {
                    0
                };
                d.extend_from_slice(&mm.to_le_bytes());
            }
        }
    }

    /// The background is ray-cast per pixel: its checkerboards take the floor of two
    /// coordinates per pixel, inlined (`f64::floor` is a libm call without SSE4.1).
    fn background(
        &mut self,
        k: &Intrinsics,
        cam: &Isometry3<f64>,
        scene: &SceneGeom,
        rgb: &mut [u8],
    ) {
        let (w, h) = (k.width as usize, k.height as usize);
        let r = cam.rotation.to_rotation_matrix();
        let o = cam.translation.vector;
        let step = r * Vector3::new(1.0 / k.fx, 0.0, 0.0);
        let [tx, ty] = scene.target_xy;
        let th = scene.target_half;
        for v in 0..h {
            let mut d = r * Vector3::new((0.5 - k.cx) / k.fx, (v as f64 + 0.5 - k.cy) / k.fy, 1.0);
            let row = &mut rgb[v * w * 3..(v + 1) * w * 3];
            let zrow = &mut self.zbuf[v * w..(v + 1) * w];
            for u in 0..w {
                let px = &mut row[u * 3..u * 3 + 3];
                let mut hit = false;
                if d.z < -1e-9 {
                    let t = -o.z / d.z;
                    let x = o.x + t * d.x;
                    let y = o.y + t * d.y;
                    if t > 0.0
                        && (TABLE_X[0]..=TABLE_X[1]).contains(&x)
                        && (TABLE_Y[0]..=TABLE_Y[1]).contains(&y)
                    {
                        let c = if (x - tx).abs() < th && (y - ty).abs() < th {
                            [70, 170, 90]
                        } else if (floor_i64(x * 20.0) + floor_i64(y * 20.0)) & 1 == 0 {
                            [181, 140, 96]
                        } else {
                            [160, 120, 80]
                        };
                        px.copy_from_slice(&c);
                        zrow[u] = t as f32;
                        hit = true;
                    } else {
                        let t2 = (FLOOR_Z - o.z) / d.z;
                        if t2 > 0.0 {
                            let x = o.x + t2 * d.x;
                            let y = o.y + t2 * d.y;
                            let c = if (floor_i64(x * 2.0) + floor_i64(y * 2.0)) & 1 == 0 {
                                [90, 90, 95]
                            } else {
                                [75, 75, 80]
                            };
                            px.copy_from_slice(&c);
                            zrow[u] = t2 as f32;
                            hit = true;
                        }
                    }
                }
                if !hit {
                    // A wall-like gradient, no depth return.
                    let g = (200.0 - 60.0 * d.z.clamp(-1.0, 1.0)) as u8;
                    px.copy_from_slice(&[g, g, (g as u16 + 20).min(255) as u8]);
                }
                d += step;
            }
        }
    }

    fn draw_box(
        &mut self,
        k: &Intrinsics,
        cam: &Isometry3<f64>,
        inv: &Isometry3<f64>,
        b: &SceneBox,
        light: &Vector3<f64>,
        rgb: &mut [u8],
    ) {
        let hx = b.half;
        let corner = |sx: f64, sy: f64, sz: f64| -> Point3<f64> {
            b.pose * Point3::new(sx * hx.x, sy * hx.y, sz * hx.z)
        };
        // faces: (normal in box frame, 4 corners in CCW order seen from outside)
        let faces: [([f64; 3], [[f64; 3]; 4]); 6] = [
            (
                [1., 0., 0.],
                [[1., -1., -1.], [1., 1., -1.], [1., 1., 1.], [1., -1., 1.]],
            ),
            (
                [-1., 0., 0.],
                [
                    [-1., -1., -1.],
                    [-1., -1., 1.],
                    [-1., 1., 1.],
                    [-1., 1., -1.],
                ],
            ),
            (
                [0., 1., 0.],
                [[-1., 1., -1.], [-1., 1., 1.], [1., 1., 1.], [1., 1., -1.]],
            ),
            (
                [0., -1., 0.],
                [
                    [-1., -1., -1.],
                    [1., -1., -1.],
                    [1., -1., 1.],
                    [-1., -1., 1.],
                ],
            ),
            (
                [0., 0., 1.],
                [[-1., -1., 1.], [1., -1., 1.], [1., 1., 1.], [-1., 1., 1.]],
            ),
            (
                [0., 0., -1.],
                [
                    [-1., -1., -1.],
                    [-1., 1., -1.],
                    [1., 1., -1.],
                    [1., -1., -1.],
                ],
            ),
        ];
        let eye = cam.translation.vector;
        for (n, cs) in faces.iter() {
            let nw = b.pose.rotation * Vector3::new(n[0], n[1], n[2]);
            let fc = b.pose * Point3::new(n[0] * hx.x, n[1] * hx.y, n[2] * hx.z);
            if nw.dot(&(fc.coords - eye)) >= 0.0 {
                continue; // back face
            }
            let shade = 0.45 + 0.55 * nw.dot(light).max(0.0);
            let color = [
                (b.color[0] as f64 * shade) as u8,
                (b.color[1] as f64 * shade) as u8,
                (b.color[2] as f64 * shade) as u8,
            ];
            let p: Vec<Point3<f64>> = cs.iter().map(|c| inv * corner(c[0], c[1], c[2])).collect();
            self.tri(k, [p[0], p[1], p[2]], color, rgb);
            self.tri(k, [p[0], p[2], p[3]], color, rgb);
        }
    }

    fn tri(&mut self, k: &Intrinsics, p: [Point3<f64>; 3], color: [u8; 3], rgb: &mut [u8]) {
        if p.iter().any(|q| q.z < NEAR) {
            return;
        }
        let (w, h) = (k.width as i64, k.height as i64);
        let s: Vec<(f64, f64, f64)> = p
            .iter()
            .map(|q| (k.fx * q.x / q.z + k.cx, k.fy * q.y / q.z + k.cy, 1.0 / q.z))
            .collect();
        let area = (s[1].0 - s[0].0) * (s[2].1 - s[0].1) - (s[2].0 - s[0].0) * (s[1].1 - s[0].1);
        if area.abs() < 1e-12 {
            return;
        }
        let minx = s
            .iter()
            .map(|q| q.0)
            .fold(f64::MAX, f64::min)
            .floor()
            .max(0.0) as i64;
        let maxx = (s.iter().map(|q| q.0).fold(f64::MIN, f64::max).ceil() as i64).min(w - 1);
        let miny = s
            .iter()
            .map(|q| q.1)
            .fold(f64::MAX, f64::min)
            .floor()
            .max(0.0) as i64;
        let maxy = (s.iter().map(|q| q.1).fold(f64::MIN, f64::max).ceil() as i64).min(h - 1);
        if minx > maxx || miny > maxy {
            return;
        }
        let inv_area = 1.0 / area;
        for y in miny..=maxy {
            let py = y as f64 + 0.5;
            for x in minx..=maxx {
                let px = x as f64 + 0.5;
                let w0 = ((s[1].0 - px) * (s[2].1 - py) - (s[2].0 - px) * (s[1].1 - py)) * inv_area;
                let w1 = ((s[2].0 - px) * (s[0].1 - py) - (s[0].0 - px) * (s[2].1 - py)) * inv_area;
                let w2 = 1.0 - w0 - w1;
                if w0 < 0.0 || w1 < 0.0 || w2 < 0.0 {
                    continue;
                }
                let iz = w0 * s[0].2 + w1 * s[1].2 + w2 * s[2].2;
                let z = (1.0 / iz) as f32;
                let idx = (y * w + x) as usize;
                if z < self.zbuf[idx] {
                    self.zbuf[idx] = z;
                    rgb[idx * 3..idx * 3 + 3].copy_from_slice(&color);
                }
            }
        }
    }
}

/// `v.floor() as i64` for finite `v` within ±2^63, without a libm call: truncation, one
/// less for negative non-integers. (Same value as `floor`: the checkerboards stay the same.)
#[inline]
fn floor_i64(v: f64) -> i64 {
    let i = v as i64;
    i - ((v < i as f64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_i64_is_floor() {
        for v in [
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.0,
            -1.0,
            2.999,
            -2.999,
            -3.0,
            1e12 + 0.5,
            -1e12 - 0.5,
        ] {
            assert_eq!(floor_i64(v), v.floor() as i64, "{v}");
        }
    }

    #[test]
    fn a_box_on_the_table_is_seen_where_it_is() {
        let k = Intrinsics::with_hfov(160, 120, 1.0);
        let cam = look_at(Vector3::new(-0.5, 0.0, 0.5), Vector3::new(0.0, 0.0, 0.0));
        let scene = SceneGeom {
            boxes: vec![SceneBox {
                pose: Isometry3::translation(0.0, 0.0, 0.025),
                half: Vector3::new(0.025, 0.025, 0.025),
                color: [255, 0, 0],
            }],
            target_xy: [0.3, 0.3],
            target_half: 0.05,
        };
        let mut r = Renderer::default();
        let (mut rgb, mut depth) = (Vec::new(), Vec::new());
        r.render(&k, &cam, &scene, &mut rgb, Some(&mut depth));
        // The camera looks at the origin: the center pixel shows the red box.
        let c = (60 * 160 + 80) * 3;
        assert!(rgb[c] > 100 && rgb[c + 1] < 30, "{:?}", &rgb[c..c + 3]);
        let z = u16::from_le_bytes([depth[c / 3 * 2], depth[c / 3 * 2 + 1]]);
        // distance to the box's near face along the optical axis, about 0.7 m - a bit
        assert!((600..710).contains(&z), "depth {z}");
        // A corner pixel sees the table (brown), not the box.
        assert!(rgb[119 * 160 * 3] > rgb[119 * 160 * 3 + 2]);
    }
}

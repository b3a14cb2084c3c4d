"""A rosbag2 MCAP that no demotape code wrote, and the checks of what demotape makes of it.

usage: rosbag2_any.py write BAG_DIR
       rosbag2_any.py check BAG_DIR DATASET FPS     (a `demotape export lerobot` of it)
       rosbag2_any.py view BAG_DIR FILE.rrd         (a `demotape view --save` of it)

`write` records, with rosbags' own rosbag2 writer (storage plugin mcap), what a ros2_control
arm with a separate gripper driver publishes: /joint_states (6 joints, 100 Hz),
/arm_controller/joint_trajectory (trajectory_msgs/JointTrajectory commands, 20 Hz),
/gripper/command (std_msgs/Float64MultiArray, 20 Hz), /gripper/state (std_msgs/Float64,
40 Hz), /imu (sensor_msgs/Imu, 100 Hz), /camera/image/compressed (JPEG, 20 Hz), and, not
exported, what `demotape view` draws: /tf, /tf_static, /lidar/points (PointCloud2),
/camera/camera_info, /odom (nav_msgs/Odometry), /cmd_vel (geometry_msgs/Twist). Every stream starts at the same time, so each grid time of a 20 fps export is a
message time of every stream.

`check` reads the bag back with rosbags' AnyReader and the dataset with pyarrow, and fails
unless every frame's observation.state and action equal (as float32) the messages at that frame
time, the feature names are the joints' and the paths', and every frame has its image.
`view` reads the .rrd with rerun-sdk's own RRD reader and fails unless the tf tree, the point
cloud, the pinhole, the odometry path and the generic scalars hold the bag's values.

Each prints a JSON summary.
"""

import io
import json
import sys
from pathlib import Path

import numpy as np

T0 = 1_700_000_000_000_000_000
SECONDS = 3.0
JOINTS = [f"joint_{i}" for i in range(1, 7)]


def pos(k_ms):
    """Joint positions at k ms after start: smooth, distinct per joint."""
    t = k_ms / 1000.0
    return np.array([0.3 * np.sin(t + i) + 0.1 * i for i in range(6)])


def write(bag):
    from PIL import Image as PILImage
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_JAZZY)
    T = ts.types
    Time = T["builtin_interfaces/msg/Time"]
    Duration = T["builtin_interfaces/msg/Duration"]
    Header = T["std_msgs/msg/Header"]
    Vec3 = T["geometry_msgs/msg/Vector3"]
    Quat = T["geometry_msgs/msg/Quaternion"]

    def header(t, frame):
        return Header(stamp=Time(sec=t // 1_000_000_000, nanosec=t % 1_000_000_000), frame_id=frame)

    def ser(m, name):
        return bytes(ts.serialize_cdr(m, name))

    streams = {
        # topic: (type, period ms, make(t_ns, k_ms))
        "/joint_states": ("sensor_msgs/msg/JointState", 10, lambda t, k: ser(T["sensor_msgs/msg/JointState"](
            header=header(t, "base_link"), name=JOINTS, position=pos(k),
            velocity=np.zeros(6), effort=np.array([], dtype=np.float64)), "sensor_msgs/msg/JointState")),
        "/arm_controller/joint_trajectory": ("trajectory_msgs/msg/JointTrajectory", 50, lambda t, k: ser(
            T["trajectory_msgs/msg/JointTrajectory"](
                header=header(t, ""), joint_names=JOINTS,
                points=[T["trajectory_msgs/msg/JointTrajectoryPoint"](
                    positions=pos(k + 100), velocities=np.array([], dtype=np.float64),
                    accelerations=np.array([], dtype=np.float64), effort=np.array([], dtype=np.float64),
                    time_from_start=Duration(sec=0, nanosec=100_000_000))]),
            "trajectory_msgs/msg/JointTrajectory")),
        "/gripper/command": ("std_msgs/msg/Float64MultiArray", 50, lambda t, k: ser(
            T["std_msgs/msg/Float64MultiArray"](
                layout=T["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0),
                data=np.array([0.08 - 0.00002 * k])), "std_msgs/msg/Float64MultiArray")),
        "/gripper/state": ("std_msgs/msg/Float64", 25, lambda t, k: ser(
            T["std_msgs/msg/Float64"](data=0.081 - 0.00002 * k), "std_msgs/msg/Float64")),
        "/imu": ("sensor_msgs/msg/Imu", 10, lambda t, k: ser(T["sensor_msgs/msg/Imu"](
            header=header(t, "imu_link"), orientation=Quat(x=0.0, y=0.0, z=0.0, w=1.0),
            orientation_covariance=np.zeros(9), angular_velocity=Vec3(x=0.01, y=0.0, z=0.0),
            angular_velocity_covariance=np.zeros(9),
            linear_acceleration=Vec3(x=0.001 * k, y=-0.5, z=9.81),
            linear_acceleration_covariance=np.zeros(9)), "sensor_msgs/msg/Imu")),
        "/camera/image/compressed": ("sensor_msgs/msg/CompressedImage", 50, lambda t, k: ser(
            T["sensor_msgs/msg/CompressedImage"](
                header=header(t, "camera"), format="rgb8; jpeg compressed bgr8",
                data=np.frombuffer(jpeg(k, PILImage), dtype=np.uint8)),
            "sensor_msgs/msg/CompressedImage")),
        "/tf": ("tf2_msgs/msg/TFMessage", 20, lambda t, k: ser(T["tf2_msgs/msg/TFMessage"](
            transforms=[T["geometry_msgs/msg/TransformStamped"](
                header=header(t, "base_link"), child_frame_id="tool0",
                transform=T["geometry_msgs/msg/Transform"](
                    translation=Vec3(x=0.4, y=0.0, z=0.001 * k), rotation=Quat(x=0.0, y=0.0, z=0.0, w=1.0)))]),
            "tf2_msgs/msg/TFMessage")),
    }
    # not exported; for `demotape view` (tf tree, point cloud, pinhole, odometry, scalars)
    PF = T["sensor_msgs/msg/PointField"]
    streams["/tf_static"] = ("tf2_msgs/msg/TFMessage", end_ms_static(), lambda t, k: ser(
        T["tf2_msgs/msg/TFMessage"](transforms=[T["geometry_msgs/msg/TransformStamped"](
            header=header(t, "tool0"), child_frame_id="camera",
            transform=T["geometry_msgs/msg/Transform"](
                translation=Vec3(x=0.0, y=0.0, z=0.05), rotation=Quat(x=0.0, y=0.0, z=0.0, w=1.0)))]),
        "tf2_msgs/msg/TFMessage"))
    streams["/lidar/points"] = ("sensor_msgs/msg/PointCloud2", 100, lambda t, k: ser(
        T["sensor_msgs/msg/PointCloud2"](
            header=header(t, "tool0"), height=1, width=50,
            fields=[PF(name=n, offset=4 * i, datatype=7, count=1) for i, n in enumerate("xyz")],
            is_bigendian=False, point_step=12, row_step=600,
            data=np.array([[0.01 * i, 0.002 * k, 0.5] for i in range(50)], dtype="<f4").view(np.uint8).ravel(),
            is_dense=True), "sensor_msgs/msg/PointCloud2"))
    streams["/camera/camera_info"] = ("sensor_msgs/msg/CameraInfo", 50, lambda t, k: ser(
        T["sensor_msgs/msg/CameraInfo"](
            header=header(t, "camera"), height=48, width=64, distortion_model="plumb_bob",
            d=np.zeros(5), k=np.array([50.0, 0, 32, 0, 50.0, 24, 0, 0, 1]), r=np.eye(3).ravel(),
            p=np.array([50.0, 0, 32, 0, 0, 50.0, 24, 0, 0, 0, 1, 0]), binning_x=0, binning_y=0,
            roi=T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                      do_rectify=False)),
        "sensor_msgs/msg/CameraInfo"))
    Cov = T["geometry_msgs/msg/PoseWithCovariance"]
    streams["/odom"] = ("nav_msgs/msg/Odometry", 20, lambda t, k: ser(T["nav_msgs/msg/Odometry"](
        header=header(t, "odom"), child_frame_id="base_link",
        pose=Cov(pose=T["geometry_msgs/msg/Pose"](position=T["geometry_msgs/msg/Point"](
            x=0.0002 * k, y=0.0, z=0.0), orientation=Quat(x=0.0, y=0.0, z=0.0, w=1.0)),
            covariance=np.zeros(36)),
        twist=T["geometry_msgs/msg/TwistWithCovariance"](twist=T["geometry_msgs/msg/Twist"](
            linear=Vec3(x=0.2, y=0.0, z=0.0), angular=Vec3(x=0.0, y=0.0, z=0.0)),
            covariance=np.zeros(36))), "nav_msgs/msg/Odometry"))
    streams["/cmd_vel"] = ("geometry_msgs/msg/Twist", 50, lambda t, k: ser(T["geometry_msgs/msg/Twist"](
        linear=Vec3(x=0.2, y=0.0, z=0.0), angular=Vec3(x=0.0, y=0.0, z=0.001 * k)),
        "geometry_msgs/msg/Twist"))
    end_ms = int(SECONDS * 1000)
    events = []
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conns = {topic: w.add_connection(topic, ty, typestore=ts) for topic, (ty, _, _) in streams.items()}
        for topic, (_, period, make) in streams.items():
            for k in range(0, end_ms + 1, period):
                events.append((T0 + k * 1_000_000, topic, k, make))
        events.sort(key=lambda e: (e[0], e[1]))
        for t, topic, k, make in events:
            w.write(conns[topic], t, make(t, k))
    print(json.dumps({"messages": len(events)}))


def end_ms_static():
    """/tf_static: once, at the start (a period longer than the bag)."""
    return int(SECONDS * 1000) + 1


def jpeg(k, PILImage):
    y, x = np.mgrid[0:48, 0:64]
    px = np.stack([x * 4, y * 5, np.full_like(x, 60)], axis=-1).astype(np.uint8)
    c = (k // 50) % 48
    px[8:24, c:c + 16] = (250, 250, 20)
    buf = io.BytesIO()
    PILImage.fromarray(px, "RGB").save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def check(bag, ds, fps):
    import pyarrow.parquet as pq
    from rosbags.highlevel import AnyReader

    by_topic = {}
    with AnyReader([Path(bag)]) as r:
        for conn, t, raw in r.messages():
            by_topic.setdefault(conn.topic, {})[t] = r.deserialize(raw, conn.msgtype)

    def at(topic, t):
        m = by_topic[topic].get(t)
        if m is None:
            fail(f"no {topic} message at {t} (the grid should hit message times)")
        return m

    info = json.loads((Path(ds) / "meta/info.json").read_text())
    want_state = [f"{j}.pos" for j in JOINTS] + ["gripper/state.data"] + [
        f"imu.linear_acceleration.{c}" for c in "xyz"]
    want_action = [f"{j}.pos" for j in JOINTS] + ["gripper/command.data[0]"]
    feats = info["features"]
    if feats["observation.state"]["names"] != want_state:
        fail(f"state names {feats['observation.state']['names']} != {want_state}")
    if feats["action"]["names"] != want_action:
        fail(f"action names {feats['action']['names']} != {want_action}")
    if "observation.images.camera" not in feats:
        fail(f"no camera feature in {sorted(feats)}")
    tables = [pq.read_table(p).to_pandas() for p in sorted((Path(ds) / "data").rglob("*.parquet"))]
    rows = 0
    for df in tables:
        for ts_s, state, action, img in zip(df["timestamp"], df["observation.state"], df["action"],
                                             df["observation.images.camera"]):
            t = T0 + round(ts_s * fps) * (1_000_000_000 // fps)
            js = at("/joint_states", t)
            imu = at("/imu", t)
            exp_state = list(js.position) + [at("/gripper/state", t).data] + [
                imu.linear_acceleration.x, imu.linear_acceleration.y, imu.linear_acceleration.z]
            cmd = at("/arm_controller/joint_trajectory", t)
            exp_action = list(cmd.points[0].positions) + list(at("/gripper/command", t).data)
            if not np.array_equal(np.asarray(state, dtype=np.float32), np.asarray(exp_state, dtype=np.float32)):
                fail(f"state at {t}: {list(state)} != {exp_state}")
            if not np.array_equal(np.asarray(action, dtype=np.float32), np.asarray(exp_action, dtype=np.float32)):
                fail(f"action at {t}: {list(action)} != {exp_action}")
            if not img or not img.get("bytes"):
                fail(f"frame at {t} has no image")
            rows += 1
    expected_rows = int(SECONDS * fps) + 1
    if rows != expected_rows:
        fail(f"{rows} frames, expected {expected_rows}")
    print(json.dumps({"frames": rows, "state": len(want_state), "action": len(want_action)}))


def view(bag, rrd):
    from rerun.experimental import RrdReader
    from rosbags.highlevel import AnyReader

    counts = {}
    with AnyReader([Path(bag)]) as r:
        for conn, _, _ in r.messages():
            counts[conn.topic] = counts.get(conn.topic, 0) + 1
    reader = RrdReader(rrd)
    cols = {}
    for c in reader.stream(store=reader.recordings()[0]):
        b = c.to_record_batch()
        for k in b.schema.names:
            if ":" in k:
                cols.setdefault((c.entity_path, k), []).extend(
                    x for x in b.column(k).to_pylist() if x is not None)

    def col(entity, comp):
        v = cols.get((entity, comp))
        if not v:
            fail(f"{entity} has no {comp} (have: {sorted(k for e, k in cols if e == entity)})")
        return v

    def flat(x):
        while isinstance(x, list) and len(x) == 1:
            x = x[0]
        return x

    # tf: base_link -> tool0 over time, tool0 -> camera static, base_link attached to the view
    if {flat(x) for x in col("/world/tf/tool0", "Transform3D:parent_frame")} != {"base_link"}:
        fail("tool0's parent is not base_link")
    zs = [flat(x)[2] for x in col("/world/tf/tool0", "Transform3D:translation")]
    if len(zs) != counts["/tf"] or abs(max(zs) - 0.001 * SECONDS * 1000) > 1e-6:
        fail(f"tool0: {len(zs)} transforms (bag: {counts['/tf']}), last z {max(zs)}")
    if flat(col("/world/tf/camera", "Transform3D:parent_frame")[0]) != "tool0":
        fail("camera's parent is not tool0")
    if [round(x, 6) for x in flat(col("/world/tf/camera", "Transform3D:translation")[0])] != [0, 0, 0.05]:
        fail("camera's translation")
    if flat(col("/world/tf/base_link", "Transform3D:parent_frame")[0]) != "tf#/world":
        fail("the tf root is not attached to the 3D view")
    # the point cloud, in its tf frame
    clouds = col("/world/points/lidar_points", "Points3D:positions")
    if len(clouds) != counts["/lidar/points"] or any(len(c) != 50 for c in clouds):
        fail(f"{len(clouds)} clouds (bag: {counts['/lidar/points']}), sizes {[len(c) for c in clouds][:3]}")
    if [round(v, 4) for v in clouds[-1][49]] != [0.49, round(0.002 * 3000, 4), 0.5]:
        fail(f"last point {clouds[-1][49]}")
    if {flat(x) for x in col("/world/points/lidar_points", "CoordinateFrame:frame")} != {"tool0"}:
        fail("the cloud is not in its header's frame")
    # the pinhole: fx, fy and the principal point, column-major
    k = flat(col("/camera/camera", "Pinhole:image_from_camera")[0])
    if [k[0], k[4], k[6], k[7]] != [50.0, 50.0, 32.0, 24.0]:
        fail(f"pinhole {k}")
    # the odometry path: 0 to 0.6 m along x
    path = flat(col("/world/odom/odom/path", "LineStrips3D:strips")[-1])
    xs = [p[0] for p in path]
    if len(path) < 30 or abs(xs[0]) > 1e-6 or abs(xs[-1] - 0.0002 * SECONDS * 1000) > 1e-6:
        fail(f"odometry path of {len(path)} points from {xs[0]} to {xs[-1]}")
    # any other type: its numbers as scalars
    wz = [flat(x) for x in col("/topics/cmd_vel/angular/z", "Scalars:scalars")]
    if len(wz) != counts["/cmd_vel"] or abs(wz[-1] - 0.001 * SECONDS * 1000) > 1e-9:
        fail(f"cmd_vel angular z: {len(wz)} values (bag: {counts['/cmd_vel']}), last {wz[-1]}")
    ax = col("/imu/imu/linear_acceleration/x", "Scalars:scalars")
    if len(ax) != counts["/imu"]:
        fail(f"imu: {len(ax)} values (bag: {counts['/imu']})")
    print(json.dumps({"tf": len(zs), "clouds": len(clouds), "path_points": len(path), "cmd_vel": len(wz)}))


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2])
    elif sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif sys.argv[1] == "view":
        view(sys.argv[2], sys.argv[3])
    else:
        fail(f"unknown command {sys.argv[1]}")

"""A real third-party ROS 2-over-Zenoh peer for demotape's end-to-end tests.

Publishes messages serialized by `rosbags` with `eclipse-zenoh`, on zenoh-bridge-ros2dds keys
(topic without the leading '/') and on rmw_zenoh keys (<domain>/<topic>/<dds type>/<hash>,
with the rmw attachment), and drives the recorder through its queryables.

usage: zenoh_peer.py SCENARIO ENDPOINT ROBOT [USER PASSWORD]
Prints one JSON document on stdout: what was published (hex payloads) and every reply.
"""

import io
import json
import sys
import time

import numpy as np
import zenoh
import zenoh.ext as ze
from rosbags.typesys import Stores, get_typestore

TS = get_typestore(Stores.ROS2_JAZZY)
Time = TS.types["builtin_interfaces/msg/Time"]
Header = TS.types["std_msgs/msg/Header"]
Image = TS.types["sensor_msgs/msg/Image"]
CompressedImage = TS.types["sensor_msgs/msg/CompressedImage"]
JointState = TS.types["sensor_msgs/msg/JointState"]
WrenchStamped = TS.types["geometry_msgs/msg/WrenchStamped"]
Wrench = TS.types["geometry_msgs/msg/Wrench"]
Vector3 = TS.types["geometry_msgs/msg/Vector3"]

HASH = "RIHS01_" + "ab" * 32
GID_J = bytes(range(16))
GID_W = bytes(range(100, 116))


def header(t_ns, frame):
    return Header(stamp=Time(sec=t_ns // 10**9, nanosec=t_ns % 10**9), frame_id=frame)


def image(t_ns, k):
    data = np.array([(k * 7 + i) % 256 for i in range(8 * 6 * 3)], dtype=np.uint8)
    m = Image(header=header(t_ns, "head"), height=6, width=8, encoding="rgb8",
              is_bigendian=0, step=24, data=data)
    return bytes(TS.serialize_cdr(m, "sensor_msgs/msg/Image"))


def jpeg_frame(t_ns, k):
    """A 64x48 JPEG as image_transport's `compressed` plugin publishes it (encoded by Pillow):
    colour ramps with a bright square that moves with k."""
    from PIL import Image as PILImage

    y, x = np.mgrid[0:48, 0:64]
    px = np.stack([x * 4, y * 5, np.full_like(x, 60)], axis=-1).astype(np.uint8)
    c = (k * 3) % 48
    px[8:24, c:c + 16] = (250, 250, 20)
    buf = io.BytesIO()
    PILImage.fromarray(px, "RGB").save(buf, format="JPEG", quality=90)
    m = CompressedImage(header=header(t_ns, "head"), format="rgb8; jpeg compressed bgr8",
                        data=np.frombuffer(buf.getvalue(), dtype=np.uint8))
    return bytes(TS.serialize_cdr(m, "sensor_msgs/msg/CompressedImage"))


def arm_joints(t_ns, k):
    """The arm driver's joint states (no gripper), in an order of its own."""
    m = JointState(header=header(t_ns, "base"), name=["j2", "j1"],
                   position=np.array([0.5 * k, float(k)]),
                   velocity=np.array([0.2, 0.1]), effort=np.array([], dtype=np.float64))
    return bytes(TS.serialize_cdr(m, "sensor_msgs/msg/JointState"))


def gripper_joint(t_ns, k):
    """The gripper driver's joint state, on the same topic at its own rate."""
    m = JointState(header=header(t_ns, "gripper"), name=["gripper"],
                   position=np.array([0.04 - 0.0001 * k]),
                   velocity=np.array([], dtype=np.float64), effort=np.array([], dtype=np.float64))
    return bytes(TS.serialize_cdr(m, "sensor_msgs/msg/JointState"))


def joints(t_ns, k):
    m = JointState(header=header(t_ns, "base"), name=["j1", "j2", "gripper"],
                   position=np.array([float(k), 0.5 * k, 0.04]),
                   velocity=np.array([0.1, 0.2, 0.0]),
                   effort=np.array([], dtype=np.float64))
    return bytes(TS.serialize_cdr(m, "sensor_msgs/msg/JointState"))


def wrench(t_ns, k):
    m = WrenchStamped(header=header(t_ns, "ft"),
                      wrench=Wrench(force=Vector3(x=0.1 * k, y=0.0, z=-9.8),
                                    torque=Vector3(x=0.0, y=0.01, z=0.0)))
    return bytes(TS.serialize_cdr(m, "geometry_msgs/msg/WrenchStamped"))


def att_tuple(seq, t_ns, gid):
    return ze.z_serialize((ze.Int64(seq), ze.Int64(t_ns), tuple(ze.UInt8(b) for b in gid)))


def att_keyed(seq, t_ns, gid):
    s = ze.z_serialize(("sequence_number", ze.Int64(seq), "source_timestamp", ze.Int64(t_ns),
                        "source_gid", gid))
    return s


def open_session(endpoint, user=None, password=None):
    conf = zenoh.Config()
    conf.insert_json5("mode", '"peer"')
    conf.insert_json5("connect/endpoints", json.dumps([endpoint]))
    conf.insert_json5("scouting/multicast/enabled", "false")
    if user:
        conf.insert_json5("transport/auth/usrpwd",
                          json.dumps({"user": user, "password": password}))
    return zenoh.open(conf)


def ask(session, robot, verb, args=None, timeout=5.0):
    """One query; returns {'ok': bool, ...} or {'ok': None} when nobody answered."""
    replies = session.get(f"demotape/{robot}/ctl/{verb}",
                          payload=json.dumps(args or {}), timeout=timeout)
    for r in replies:
        if r.ok is not None:
            return json.loads(r.ok.payload.to_string())
        return json.loads(r.err.payload.to_string())
    return {"ok": None, "error": "no reply"}


def wait_for_recorder(session, robot, deadline_s=20.0):
    t0 = time.time()
    while time.time() - t0 < deadline_s:
        r = ask(session, robot, "status", timeout=1.0)
        if r.get("ok") is not None:
            return r
        time.sleep(0.2)
    raise SystemExit("recorder never answered status")


def scenario_record(session, robot, out):
    statuses = []
    sub = session.declare_subscriber(f"demotape/{robot}/status",
                                     lambda s: statuses.append(json.loads(s.payload.to_string())))
    pub = {"/camera/head/image_raw": [], "/joint_states": [], "/wrist/right/wrench": []}
    out["published"] = pub
    out["start"] = ask(session, robot, "start",
                       {"task": "pick the red cube", "operator": "ana", "tags": ["e2e", "zenoh"]})
    out["start_again"] = ask(session, robot, "start", {"task": "again"})
    jkey = f"0/joint_states/sensor_msgs::msg::dds_::JointState_/{HASH}"
    wkey = f"0/wrist/right/wrench/geometry_msgs::msg::dds_::WrenchStamped_/{HASH}"
    n = 200
    for k in range(n):
        t = time.time_ns()
        if k % 5 == 0:
            b = image(t, k)
            session.put("camera/head/image_raw", b)  # zenoh-bridge-ros2dds style
            pub["/camera/head/image_raw"].append(b.hex())
        b = joints(t, k)
        session.put(jkey, b, attachment=att_tuple(k, t, GID_J))  # rmw_zenoh (Jazzy+) style
        pub["/joint_states"].append(b.hex())
        if k < 80:  # the wrench publisher vanishes after 80 messages
            b = wrench(t, k)
            session.put(wkey, b, attachment=att_keyed(k, t, GID_W))  # older rmw attachment
            pub["/wrist/right/wrench"].append(b.hex())
        if k == 100:
            out["mark"] = ask(session, robot, "mark", {"outcome": "slip", "note": "rotated"})
        if k in (20, 21, 22):  # malformed: a truncated JointState
            session.put(jkey, joints(t, k)[:30], attachment=att_tuple(10_000 + k, t, GID_J))
        if k in (40, 41):  # another type on the joint topic
            session.put(f"0/joint_states/std_msgs::msg::dds_::String_/{HASH}",
                        bytes([0, 1, 0, 0, 3, 0, 0, 0, 104, 105, 0]))
        time.sleep(0.01)
    time.sleep(0.3)
    out["stop"] = ask(session, robot, "stop", {"outcome": "success", "note": "placed"})
    out["stop_again"] = ask(session, robot, "stop")
    out["mark_idle"] = ask(session, robot, "mark", {"outcome": "x"})
    time.sleep(1.2)
    sub.undeclare()
    out["statuses"] = statuses


def scenario_seams(session, robot, out):
    """Continuous joint states (position[0] = sequence); start after 1 s, stop after 3.5 s."""
    key = "joint_states"
    k = 0
    t_start = time.time() + 1.0
    started = stopped = None
    while True:
        now = time.time()
        if started is None and now >= t_start:
            out["start"] = ask(session, robot, "start", {"task": "seams"})
            started = k
        if started is not None and stopped is None and now >= t_start + 3.5:
            out["stop"] = ask(session, robot, "stop")
            stopped = k
        if stopped is not None and k >= stopped + 50:
            break
        session.put(key, joints(time.time_ns(), k))
        k += 1
        time.sleep(0.005)
    out["first_after_start"] = started
    out["first_after_stop"] = stopped
    out["published"] = k


def scenario_idle_stale(session, robot, out):
    """Joint states and wrenches for 1 s while the recorder is idle; the wrench publisher
    then dies. 2 s later (past stale_after_ms) an episode starts: it must begin knowing the
    wrench topic is stale. Joints go on until the stop."""
    k = 0
    t0 = time.time()
    started = False
    while True:
        now = time.time() - t0
        t = time.time_ns()
        session.put("joint_states", joints(t, k))
        if now < 1.0:
            session.put("wrist/right/wrench", wrench(t, k))
        if not started and now >= 3.0:
            out["start"] = ask(session, robot, "start", {"task": "idle stale"})
            started = True
        if now >= 4.0:
            out["stop"] = ask(session, robot, "stop")
            break
        k += 1
        time.sleep(0.01)


def scenario_compressed(session, robot, out):
    """A real robot's usual setup: a JPEG CompressedImage camera at 20 Hz (rmw_zenoh keys),
    and two publishers on /joint_states: the arm driver (j2, j1) at 100 Hz and the gripper
    driver (gripper) at 20 Hz, which speaks first; 3 s inside one episode."""
    ckey = f"0/camera/head/image_raw/compressed/sensor_msgs::msg::dds_::CompressedImage_/{HASH}"
    jkey = f"0/joint_states/sensor_msgs::msg::dds_::JointState_/{HASH}"
    gid_c = bytes(range(50, 66))
    gid_g = bytes(range(70, 86))
    out["start"] = ask(session, robot, "start", {"task": "pick the cube", "operator": "ana"})
    frames = 0
    for k in range(300):
        t = time.time_ns()
        if k % 5 == 0:
            session.put(jkey, gripper_joint(t, k), attachment=att_tuple(k // 5, t, gid_g))
            session.put(ckey, jpeg_frame(t, k), attachment=att_tuple(frames, t, gid_c))
            frames += 1
        session.put(jkey, arm_joints(t, k), attachment=att_tuple(k, t, GID_J))
        time.sleep(0.01)
    time.sleep(0.3)
    out["stop"] = ask(session, robot, "stop", {"outcome": "success"})
    out["frames"] = frames
    out["joint_states"] = 300


def scenario_auth(session, robot, out):
    out["start"] = ask(session, robot, "start", {"task": "auth"}, timeout=3.0)
    out["status"] = ask(session, robot, "status", timeout=3.0)
    # the live copy's schemas (any authenticated peer may read them)
    out["schemas"] = None
    for r in session.get(f"demotape/{robot}/schemas", timeout=3.0):
        if r.ok is not None:
            out["schemas"] = sorted(json.loads(r.ok.payload.to_string()))


def scenario_sensor_node(session, robot, out):
    """An rmw_zenoh-style sensor node: a liveliness token for itself, joint states, then it
    stops (token undeclared, session closed)."""
    zid = str(session.info.zid())
    token = session.liveliness().declare_token(f"@ros2_lv/0/{zid}/0/0/NN/%/%/joint_driver")
    for k in range(20):
        session.put("joint_states", joints(time.time_ns(), k))
        time.sleep(0.01)
    token.undeclare()
    time.sleep(0.5)
    out["published"] = 20


MSG_DIR = __import__("pathlib").Path(__file__).parent / "msgs"


def any_type_messages():
    """One builder per topic: (topic, type, fn(t_ns, k) -> message), 14 standard types and a
    custom one (tests/python/msgs), in both byte orders."""
    from rosbags.typesys import get_types_from_msg

    types = {}
    for f in sorted(MSG_DIR.glob("*/msg/*.msg")):
        types.update(get_types_from_msg(f.read_text(), f"{f.parent.parent.name}/msg/{f.stem}"))
    TS.register(types)
    T = TS.types

    def h(t, frame="base"):
        return header(t, frame)

    def vec(x, y, z):
        return T["geometry_msgs/msg/Vector3"](x=x, y=y, z=z)

    def quat(k):
        return T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=np.sin(k / 20), w=np.cos(k / 20))

    def pose(k):
        return T["geometry_msgs/msg/Pose"](
            position=T["geometry_msgs/msg/Point"](x=0.01 * k, y=0.0, z=0.3), orientation=quat(k))

    def twist(k):
        return T["geometry_msgs/msg/Twist"](linear=vec(0.1, 0.0, 0.0), angular=vec(0.0, 0.0, 0.01 * k))

    def tf(t, k):
        tr = T["geometry_msgs/msg/TransformStamped"](
            header=h(t, "world"), child_frame_id="tool0",
            transform=T["geometry_msgs/msg/Transform"](translation=vec(0.4, 0.1 * k, 0.2),
                                                        rotation=quat(k)))
        return T["tf2_msgs/msg/TFMessage"](transforms=[tr, tr])

    def camera_info(t, k):
        roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                     do_rectify=False)
        return T["sensor_msgs/msg/CameraInfo"](
            header=h(t, "head"), height=480, width=640, distortion_model="plumb_bob",
            d=np.array([0.1, -0.2, 0.0, 0.0, 0.01]), k=np.arange(9, dtype=np.float64),
            r=np.eye(3).ravel(), p=np.arange(12, dtype=np.float64), binning_x=0, binning_y=0,
            roi=roi)

    def imu(t, k):
        return T["sensor_msgs/msg/Imu"](
            header=h(t, "imu"), orientation=quat(k), orientation_covariance=np.zeros(9),
            angular_velocity=vec(0.0, 0.0, 0.1), angular_velocity_covariance=np.zeros(9),
            linear_acceleration=vec(0.0, 0.01 * k, 9.81), linear_acceleration_covariance=np.zeros(9))

    def cloud(t, k):
        PF = T["sensor_msgs/msg/PointField"]
        fields = [PF(name=n, offset=4 * i, datatype=7, count=1) for i, n in enumerate("xyz")]
        pts = np.arange(3 * 16, dtype=np.float32) * (k + 1)
        return T["sensor_msgs/msg/PointCloud2"](
            header=h(t, "lidar"), height=1, width=16, fields=fields, is_bigendian=False,
            point_step=12, row_step=192, data=np.frombuffer(pts.tobytes(), dtype=np.uint8),
            is_dense=True)

    def odom(t, k):
        return T["nav_msgs/msg/Odometry"](
            header=h(t, "odom"), child_frame_id="base_link",
            pose=T["geometry_msgs/msg/PoseWithCovariance"](pose=pose(k), covariance=np.zeros(36)),
            twist=T["geometry_msgs/msg/TwistWithCovariance"](twist=twist(k), covariance=np.zeros(36)))

    def traj(t, k):
        P = T["trajectory_msgs/msg/JointTrajectoryPoint"]
        D = T["builtin_interfaces/msg/Duration"]
        pts = [P(positions=np.array([0.1 * k + i, 0.2, -0.3]), velocities=np.array([]),
                 accelerations=np.array([]), effort=np.array([]),
                 time_from_start=D(sec=i, nanosec=0)) for i in range(2)]
        return T["trajectory_msgs/msg/JointTrajectory"](header=h(t), joint_names=["a", "b", "c"],
                                                       points=pts)

    def f64array(t, k):
        L = T["std_msgs/msg/MultiArrayLayout"]
        return T["std_msgs/msg/Float64MultiArray"](layout=L(dim=[], data_offset=0),
                                                  data=np.array([0.04 - 0.001 * k]))

    def pose_stamped(t, k):
        return T["geometry_msgs/msg/PoseStamped"](header=h(t), pose=pose(k))

    def battery(t, k):
        return T["sensor_msgs/msg/BatteryState"](
            header=h(t), voltage=48.0, temperature=30.0, current=-2.0, charge=10.0,
            capacity=20.0, design_capacity=20.0, percentage=0.5 - 0.001 * k,
            power_supply_status=2, power_supply_health=1, power_supply_technology=2, present=True,
            cell_voltage=np.array([4.0] * 12, dtype=np.float32),
            cell_temperature=np.array([], dtype=np.float32), location="base", serial_number="B1")

    def diag(t, k):
        KV = T["diagnostic_msgs/msg/KeyValue"]
        st = T["diagnostic_msgs/msg/DiagnosticStatus"](
            level=bytes([0]) if False else 0, name="motor", message="ok", hardware_id="m1",
            values=[KV(key="temp", value=str(40 + k))])
        return T["diagnostic_msgs/msg/DiagnosticArray"](header=h(t), status=[st])

    def scan(t, k):
        return T["sensor_msgs/msg/LaserScan"](
            header=h(t, "laser"), angle_min=-1.0, angle_max=1.0, angle_increment=0.1,
            time_increment=0.0, scan_time=0.1, range_min=0.1, range_max=10.0,
            ranges=np.linspace(1, 2, 21, dtype=np.float32), intensities=np.array([], dtype=np.float32))

    def string(t, k):
        return T["std_msgs/msg/String"](data=f"state {k} ✓")

    def gripper(t, k):
        F = T["my_robot_msgs/msg/FingerState"]
        return T["my_robot_msgs/msg/GripperState"](
            header=h(t, "gripper"), width=0.08 - 0.001 * k, force=5.0, mode=1,
            object_detected=k > 10,
            fingers=[F(position=0.04, taxels=np.array([0.5, 1.5], dtype=np.float32)),
                     F(position=0.04, taxels=np.array([], dtype=np.float32))],
            fault="")

    return [
        ("/tf", "tf2_msgs/msg/TFMessage", tf),
        ("/camera/head/camera_info", "sensor_msgs/msg/CameraInfo", camera_info),
        ("/imu/data", "sensor_msgs/msg/Imu", imu),
        ("/lidar/points", "sensor_msgs/msg/PointCloud2", cloud),
        ("/odom", "nav_msgs/msg/Odometry", odom),
        ("/arm_controller/joint_trajectory", "trajectory_msgs/msg/JointTrajectory", traj),
        ("/gripper_controller/commands", "std_msgs/msg/Float64MultiArray", f64array),
        ("/cmd_vel", "geometry_msgs/msg/Twist", lambda t, k: twist(k)),
        ("/tool_pose", "geometry_msgs/msg/PoseStamped", pose_stamped),
        ("/battery", "sensor_msgs/msg/BatteryState", battery),
        ("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", diag),
        ("/scan", "sensor_msgs/msg/LaserScan", scan),
        ("/robot_state", "std_msgs/msg/String", string),
        ("/gripper/state", "my_robot_msgs/msg/GripperState", gripper),
        ("/debug/scan", "sensor_msgs/msg/LaserScan", scan),  # excluded by the recorder's config
        ("/late/imu", "sensor_msgs/msg/Imu", imu),  # announced only once the episode runs
    ]


def dds(ty):
    pkg, _, name = ty.split("/")
    return f"{pkg}::msg::dds_::{name}_"


def scenario_any_types(session, robot, out):
    """rmw_zenoh-style publishers of 15 topics (14 types, one custom) announced by liveliness
    tokens before the episode, one topic routed by a zenoh-bridge-ros2dds-style publisher; one
    more announces a type nobody defined. Every topic gets 25
    messages (every 5th big-endian) inside the episode, plus 2 malformed ones each."""
    zid = str(session.info.zid())
    statuses = []
    status_sub = session.declare_subscriber(
        f"demotape/{robot}/status", lambda s: statuses.append(json.loads(s.payload.to_string())))
    builders = any_type_messages()
    tokens = []
    qos = "::,10:,:,:,,"
    hashes = {}
    late = {}
    for i, (topic, ty, _) in enumerate(builders + [("/vendor/blob", "vendor_msgs/msg/Blob", None)]):
        hs = TS.hash_rihs01(ty) if ty in TS.types else "RIHS01_" + "00" * 32
        hashes[topic] = hs
        mangled = topic.replace("/", "%")
        key = f"@ros2_lv/0/{zid}/0/{10 + i}/MP/%/%/peer_node/{mangled}/{dds(ty)}/{hs}/{qos}"
        if topic.startswith("/late/"):
            late[topic] = key
        else:
            tokens.append(session.liveliness().declare_token(key))
    out["hashes"] = {ty: TS.hash_rihs01(ty) for _, ty, _ in builders}
    # and one topic as zenoh-bridge-ros2dds announces and routes it: `/` escaped as `§`, data
    # on the bare key expression, plain CDR without attachment
    cmd_vel = {t: f for t, _, f in builders}["/cmd_vel"]
    bridged = ("/bridge/cmd_vel", "geometry_msgs/msg/Twist", lambda t, k: cmd_vel(t, k + 100))
    tokens.append(session.liveliness().declare_token(
        f"@ros2_lv/{zid}/MP/bridge§cmd_vel/geometry_msgs§msg§Twist/:1:1:1,10"))
    time.sleep(2.0)  # the recorder discovers them and subscribes
    out["start"] = ask(session, robot, "start", {"task": "any types"})
    # a publisher that appears mid-episode: its channel begins inside the episode
    for key in late.values():
        tokens.append(session.liveliness().declare_token(key))
    time.sleep(1.0)
    pub = {t: [] for t, _, _ in builders + [bridged]}
    out["published"] = pub
    out["types"] = {t: ty for t, ty, _ in builders + [bridged]}
    malformed = {}
    for k in range(25):
        t = time.time_ns()
        for i, (topic, ty, fn) in enumerate(builders):
            b = bytes(TS.serialize_cdr(fn(t, k), ty, little_endian=(k % 5 != 0)))
            key = f"0/{topic[1:]}/{dds(ty)}/{hashes[topic]}"
            session.put(key, b, attachment=att_tuple(k, t, bytes([i] * 16)))
            pub[topic].append(b.hex())
            if k in (7, 8):  # truncated, and one with trailing garbage
                bad = b[: max(4, len(b) // 2)] if k == 7 else b + b"\x01" * 9
                session.put(key, bad, attachment=att_tuple(1000 + k, t, bytes([i] * 16)))
                malformed[topic] = malformed.get(topic, 0) + 1
        session.put(f"0/vendor/blob/{dds('vendor_msgs/msg/Blob')}/{hashes['/vendor/blob']}", b"\x00\x01\x00\x00abcd")
        b = bytes(TS.serialize_cdr(bridged[2](t, k), bridged[1]))
        session.put("bridge/cmd_vel", b)
        pub[bridged[0]].append(b.hex())
        if k == 7:
            session.put("bridge/cmd_vel", b[:6])
            malformed[bridged[0]] = 1
        time.sleep(0.04)
    out["malformed"] = malformed
    time.sleep(0.5)
    out["stop"] = ask(session, robot, "stop")
    time.sleep(1.2)
    status_sub.undeclare()
    out["statuses"] = statuses
    for tk in tokens:
        tk.undeclare()


def main():
    scenario, endpoint, robot = sys.argv[1], sys.argv[2], sys.argv[3]
    user = sys.argv[4] if len(sys.argv) > 4 else None
    password = sys.argv[5] if len(sys.argv) > 5 else None
    out = {}
    try:
        session = open_session(endpoint, user, password)
    except Exception as e:  # refused at the transport (e.g. no credentials)
        out["open_error"] = str(e)
        out["start"] = {"ok": None, "error": "no session"}
        print(json.dumps(out))
        return
    with session:
        if scenario not in ("auth", "sensor_node"):
            out["status0"] = wait_for_recorder(session, robot)
        else:
            time.sleep(1.0)
        {"record": scenario_record, "seams": scenario_seams, "auth": scenario_auth,
         "compressed": scenario_compressed, "idle_stale": scenario_idle_stale,
         "sensor_node": scenario_sensor_node, "any_types": scenario_any_types}[scenario](
            session, robot, out)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

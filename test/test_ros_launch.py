"""launch/reconstruct.launch.py and the installed executable. `launch`/`launch_ros` are not on PyPI: where they
are missing the launch file is compiled and its declared arguments read from the syntax tree; where they exist
the description is built and inspected. The launch_testing test is test_ros_launch_testing.py."""
import ast
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "reconstruct.launch.py"
NODE = "lrm4d_reconstruct"
ARGS = {"config", "checkpoint", "device", "rviz", "rviz_config", "use_sim_time"}


def declared_arguments(tree: ast.AST) -> dict[str, str | None]:
    """name -> literal default (None when it is a substitution) of every DeclareLaunchArgument call."""
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "DeclareLaunchArgument":
            default = next((k.value for k in node.keywords if k.arg == "default_value"), None)
            out[node.args[0].value] = default.value if isinstance(default, ast.Constant) else None
    return out


def test_launch_file_compiles_and_declares_its_arguments():
    source = LAUNCH.read_text()
    tree = ast.parse(source, str(LAUNCH))
    compile(tree, str(LAUNCH), "exec")
    args = declared_arguments(tree)
    assert set(args) == ARGS
    assert args["checkpoint"] == "" and args["device"] == "" and args["rviz"] == "false"
    assert args["use_sim_time"] == "false"
    assert '("~/render_view", "/render_view")' in source and 'executable="reconstruct_node"' in source
    assert 'name=NODE_NAME' in source and 'NODE_NAME = "lrm4d_reconstruct"' in source


@pytest.mark.parametrize("config, rviz", [("reconstruct.yaml", "lrm4d.rviz"),
                                          ("robot_realsense_tf.yaml", "robot_realsense_tf.rviz")])
def test_each_configs_rviz_file_shows_what_that_config_publishes(config, rviz):
    """RViz's fixed frame is the config's world frame and its image displays are the config's virtual cameras'
    (latched: RViz started after a reconstruction still gets the last frame); pose displays only where poses come
    from topics."""
    params = yaml.safe_load((ROOT / "config" / config).read_text())["/**"]["ros__parameters"]
    view = yaml.safe_load((ROOT / "rviz" / rviz).read_text())["Visualization Manager"]
    assert view["Global Options"]["Fixed Frame"] == params.get("world_frame", "world")
    shown = {d["Class"].rsplit("/", 1)[1]: [] for d in view["Displays"]}
    for d in view["Displays"]:
        shown[d["Class"].rsplit("/", 1)[1]].append(d)
    virtual = params.get("virtual_camera_names", [])
    assert virtual and {d["Topic"]["Value"] for d in shown["Image"]} == {
        f"/{NODE}/{v}/{k}" for v in virtual for k in ("image", "depth")}
    assert all(d["Topic"]["Durability Policy"] == "Transient Local" for d in shown["Image"])
    assert [d["Topic"]["Value"] for d in shown["PointCloud2"]] == [f"/{NODE}/gaussians"]
    if params.get("pose_source", "topic") == "topic":
        assert {d["Topic"]["Value"] for d in shown["Pose"]} == {f"/{c}/pose" for c in params["camera_names"]}
    else:
        assert "Pose" not in shown and "TF" in shown


def test_robot_example_config_sets_only_declared_parameters():
    params = pytest.importorskip("lrm4d_ros.ros.params")
    values = yaml.safe_load((ROOT / "config" / "robot_realsense_tf.yaml").read_text())["/**"][
        "ros__parameters"]
    for name, value in values.items():
        if name not in ("camera_names", "cameras", "virtual_camera_names", "virtual_cameras"):
            assert name in params.SCALARS and type(value) is type(params.SCALARS[name][0]), name
    keys = {"image_topic", "info_topic", "pose_topic", "depth_topic", "depth_info_topic", "frame_id", "time_offset_s"}
    assert set(values["cameras"]) == set(values["camera_names"])
    assert all(set(c) <= keys for c in values["cameras"].values())
    assert set(values["virtual_cameras"]) == set(values["virtual_camera_names"])
    # the chase camera looks at odom's origin, with no roll (its x axis level)
    chase = values["virtual_cameras"]["chase"]
    T = params.checked_pose(chase["position"], chase["orientation_wxyz"])
    np.testing.assert_allclose(T[:3, 3] + np.linalg.norm(T[:3, 3]) * T[:3, 2], 0, atol=1e-3)
    assert abs(T[2, 0]) < 1e-3 and T[2, 1] < 0  # x level, y (down in the image) pointing down


def test_config_is_for_the_launched_node_and_matches_declared_parameters():
    params = pytest.importorskip("lrm4d_ros.ros.params")
    cfg = yaml.safe_load((ROOT / "config" / "reconstruct.yaml").read_text())
    values = cfg["/**"]["ros__parameters"]
    # every scalar in the YAML is a declared parameter with the same type as its default
    for name, value in values.items():
        if name in params.SCALARS:
            assert type(value) is type(params.SCALARS[name][0]), name
    assert set(params.SCALARS) - {"render_service"} <= set(values)
    assert values["render_service"] == "/render_view"
    assert values["camera_names"] == params.DEFAULT_CAMERAS
    vc = values["virtual_cameras"]
    assert set(vc) == set(values["virtual_camera_names"])


@pytest.mark.skipif(importlib.util.find_spec("launch_ros") is None, reason="launch_ros is not installed")
def test_launch_description_builds():
    spec = importlib.util.spec_from_file_location("reconstruct_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ld = module.generate_launch_description()
    assert {a.name for a in ld.get_launch_arguments()} == ARGS


def _launch_module_with_stand_ins(monkeypatch):
    """The launch file executed against minimal stand-ins of `launch` and `launch_ros` (not on PyPI): what it does
    with its arguments runs here, not only where ROS is installed. A stand-in records its arguments; a
    LaunchConfiguration performs to the context's value."""
    import sys
    import types

    class Recorded:
        def __init__(self, *args, **kwargs):
            self.args, self.kwargs = args, kwargs

    class LaunchConfiguration(Recorded):
        def perform(self, context):
            return context[self.args[0]]

    mods = {name: types.ModuleType(name) for name in (
        "launch", "launch.actions", "launch.conditions", "launch.substitutions", "launch_ros", "launch_ros.actions",
        "launch_ros.parameter_descriptions", "launch_ros.substitutions")}
    mods["launch"].LaunchDescription = Recorded
    for name in ("DeclareLaunchArgument", "OpaqueFunction"):
        setattr(mods["launch.actions"], name, type(name, (Recorded,), {}))
    mods["launch.conditions"].IfCondition = type("IfCondition", (Recorded,), {})
    mods["launch.substitutions"].LaunchConfiguration = LaunchConfiguration
    mods["launch.substitutions"].PathJoinSubstitution = type("PathJoinSubstitution", (Recorded,), {})
    mods["launch_ros.actions"].Node = type("Node", (Recorded,), {})
    mods["launch_ros.parameter_descriptions"].ParameterValue = type("ParameterValue", (Recorded,), {})
    mods["launch_ros.substitutions"].FindPackageShare = type("FindPackageShare", (Recorded,), {})
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)
    spec = importlib.util.spec_from_file_location("reconstruct_launch_stand_ins", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_launch_arguments_reach_the_node_as_documented(monkeypatch):
    """Only a non-empty checkpoint or device overrides the YAML (so one set in the file is kept); use_sim_time is
    parsed as a bool; /render_view is the node's service; RViz takes rviz_config only with rviz:=true."""
    module = _launch_module_with_stand_ins(monkeypatch)
    context = {"config": "/my/params.yaml", "checkpoint": "", "device": "cpu", "use_sim_time": "True"}
    (node,) = module._reconstruct_node(context)
    assert node.kwargs["executable"] == "reconstruct_node" and node.kwargs["name"] == "lrm4d_reconstruct"
    config, overrides = node.kwargs["parameters"]
    assert config == "/my/params.yaml" and set(overrides) == {"device", "use_sim_time"}
    assert overrides["device"].args == ("cpu",) and overrides["use_sim_time"] is True
    assert node.kwargs["remappings"] == [("~/render_view", "/render_view")]
    (node,) = module._reconstruct_node({**context, "checkpoint": "/w.safetensors", "use_sim_time": "false"})
    assert set(node.kwargs["parameters"][1]) == {"checkpoint", "device", "use_sim_time"}
    assert node.kwargs["parameters"][1]["use_sim_time"] is False
    ld = module.generate_launch_description()
    actions = ld.args[0]
    assert {a.args[0] for a in actions if type(a).__name__ == "DeclareLaunchArgument"} == ARGS
    (rviz,) = [a for a in actions if type(a).__name__ == "Node"]
    assert rviz.kwargs["arguments"][1].args == ("rviz_config",)
    assert rviz.kwargs["condition"].args[0].args == ("rviz",)


def installed_executable() -> Path:
    prefix = os.environ.get("COLCON_PREFIX_PATH", str(ROOT / "install")).split(os.pathsep)[0]
    exe = Path(prefix) / "lrm4d_ros" / "lib" / "lrm4d_ros" / "reconstruct_node"
    if not exe.is_file():
        pytest.skip(f"{exe} not built (scripts/build_ros.sh)")
    return exe


def wait_for_line(proc, text: str, timeout: float) -> str:
    """The first line of `proc`'s stdout or stderr holding `text`; AssertionError with what it printed if the
    process exits or `timeout` s pass first (a node stalled at start-up fails the test, not hangs CI)."""
    import selectors

    sel = selectors.DefaultSelector()
    for f in (proc.stdout, proc.stderr):
        sel.register(f, selectors.EVENT_READ)
    seen, end = "", time.monotonic() + timeout
    while time.monotonic() < end:
        for key, _ in sel.select(timeout=max(0.0, end - time.monotonic())):
            chunk = os.read(key.fileobj.fileno(), 65536).decode(errors="replace")
            if not chunk:  # that pipe closed: the process is ending
                sel.unregister(key.fileobj)
            seen += chunk
            found = [line for line in seen.splitlines() if text in line]
            if found:
                return found[0]
        if not sel.get_map():
            break
    raise AssertionError(f"no line with {text!r} within {timeout:g} s (exit code {proc.poll()}); it printed:\n"
                         f"{seen[-4000:]}")


@pytest.mark.parametrize("config", ["reconstruct.yaml", "robot_realsense_tf.yaml"])
def test_installed_executable_runs_the_yaml_and_reports_bad_parameters(tmp_path, config):
    """lib/lrm4d_ros/reconstruct_node (what `ros2 run` starts) loads each shipped config (the default one, and the
    robot example: TF poses, compressed colour, depth in its own frame, a virtual camera), advertises /render_view,
    exits 0 on SIGINT; a bad parameter makes it exit 1 with the reason. Started in a namespace, as on a robot: the
    file still applies (keyed /**: one keyed by the node's name was ignored there, render_view then private)."""
    torch = pytest.importorskip("torch")
    from lrm4d_ros.checkpoint import save_model
    from lrm4d_ros.model import LRM4D, LRM4DConfig

    torch.manual_seed(0)
    ckpt = save_model(tmp_path / "tiny.safetensors", LRM4D(LRM4DConfig.preset("tiny", n_layer=1)))
    exe = installed_executable()
    env = {**os.environ, "ROS_DOMAIN_ID": "73", "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    args = [str(exe), "--ros-args", "-r", "__ns:=/robot1", "--params-file", str(ROOT / "config" / config),
            "-p", f"checkpoint:={ckpt}"]
    # SIGINT restored in the child: a background job of a non-interactive shell starts with it ignored
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        line = wait_for_line(proc, "render service", timeout=120.0)
        assert "render service /render_view" in line, line
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, (out + err)[-6000:]  # a native crash: faulthandler's stacks
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    bad = subprocess.run(args + ["-p", "selection_policy:=random"], capture_output=True, text=True, timeout=120,
                         env=env)
    assert bad.returncode == 1, bad.stderr[-2000:]
    assert "cannot start: parameter selection_policy must be one of" in bad.stderr


def test_ctrl_c_while_the_executable_still_imports_stops_it_quietly():
    """A SIGINT in the executable's first second lands while torch and rclpy import (before main() can take
    signals): exit 0 without a KeyboardInterrupt traceback, as from a started node, and without the abort (-6) of
    one raised inside a C++ extension's initialisation (seen in CI with the launcher that caught it)."""
    exe = installed_executable()
    env = {**os.environ, "ROS_DOMAIN_ID": "87", "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    proc = subprocess.Popen([str(exe)], stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Traceback" not in err, (proc.returncode, err[-3000:])


def test_a_signal_asks_the_node_to_stop_and_a_second_one_interrupts():
    """The node's SIGINT/SIGTERM handler only sets a flag (no exception inside rclpy's constructors); a second
    signal raises KeyboardInterrupt for a stuck start-up."""
    pytest.importorskip("rclpy")
    try:
        from lrm4d_ros.ros.reconstruct_node import StopOnSignal
    except ImportError as exc:  # the generated interfaces are missing: scripts/build_ros.sh
        pytest.skip(str(exc))
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        stop = StopOnSignal()
        assert not stop.requested.is_set()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested.wait(1.0)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1.0)  # the handler runs at the next bytecode of the main thread
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


def test_a_second_signal_while_the_node_shuts_down_ends_the_process_at_once():
    """Once the node is shutting down, a second signal (Ctrl-C twice, or ros2 launch's SIGTERM after its SIGINT)
    exits 128 + signal with one line: raised as KeyboardInterrupt there it aborted the interpreter (rc 134)."""
    pytest.importorskip("rclpy")
    script = ("import os, signal, time\n"
              "from lrm4d_ros.ros.reconstruct_node import StopOnSignal\n"
              "stop = StopOnSignal()\n"
              "os.kill(os.getpid(), signal.SIGINT)\n"
              "assert stop.requested.wait(2.0)\n"
              "stop.shutting_down = True\n"
              "os.kill(os.getpid(), signal.SIGTERM)\n"
              "time.sleep(10)\n"
              "print('not reached')\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    if "No module named 'lrm4d_ros.msg'" in proc.stderr or "cannot import name" in proc.stderr:
        pytest.skip("the generated interfaces are missing: scripts/build_ros.sh")
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr[-2000:]
    assert proc.stderr.strip().endswith("[lrm4d_reconstruct] SIGTERM again while shutting down: exiting now")
    assert "not reached" not in proc.stdout


def test_the_libraries_warnings_go_to_the_nodes_log(monkeypatch):
    """main() sends Python warnings (e.g. a floor_z the depth cameras contradict) to the node's logger."""
    pytest.importorskip("rclpy")
    try:
        from lrm4d_ros.ros.reconstruct_node import log_warnings
    except ImportError as exc:
        pytest.skip(str(exc))
    import warnings

    logged = []

    class Logger:
        def warning(self, text):
            logged.append(text)

    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # restored after the test
    log_warnings(Logger())
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("floor_z is 0.500 m but the depth cameras show a floor at 0.000 m", RuntimeWarning)
    assert logged == ["RuntimeWarning: floor_z is 0.500 m but the depth cameras show a floor at 0.000 m"]

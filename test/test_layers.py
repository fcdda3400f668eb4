"""DESIGN.md §2: the data flows one way. Read from every module's imports (top-level and inside functions):
below the ROS adapter nothing imports ROS; the core (model, reconstruction, rendering and what they share)
imports no source or adapter (io/, data/, ros/, viewer/) and no command module; no module imports a command
module but the commands themselves."""
import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "lrm4d_ros"
ROS_ROOTS = ("rclpy", "rosidl_runtime_py", "rosidl_parser", "builtin_interfaces", "std_msgs", "sensor_msgs",
             "geometry_msgs", "nav_msgs", "tf2_msgs", "rcl_interfaces", "launch", "launch_ros")
ADAPTERS = ("io", "data", "ros", "viewer")  # sources of views and the ways out
# `lrm4d <command>` modules (and viewer/command.py)
COMMANDS = ("cli", "pipeline", "demo", "train", "evaluate", "check_bag")


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `path`."""
    mod = path.relative_to(PKG.parent).with_suffix("").parts
    package = mod[:-1] if path.name != "__init__.py" else mod
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(package[:len(package) - node.level + 1]) if node.level else []
            name = ".".join(base + ([node.module] if node.module else []))
            # `from . import x` / `from .pkg import mod`: the names may be modules
            out += [(node.lineno, name)] + [(node.lineno, f"{name}.{a.name}") for a in node.names]
    return out


def modules():
    for path in sorted(PKG.rglob("*.py")):
        yield ".".join(path.relative_to(PKG).with_suffix("").parts), path


def part(name: str) -> str:
    """lrm4d_ros.x.y -> x ('' for the package itself or anything outside it)."""
    bits = name.split(".")
    return bits[1] if len(bits) > 1 and bits[0] == "lrm4d_ros" else ""


def test_only_the_ros_adapter_imports_ros():
    bad = [f"{path.relative_to(PKG.parent)}:{line} imports {name}"
           for mod, path in modules() if part(f"lrm4d_ros.{mod}") != "ros"
           for line, name in imports(path)
           if name.split(".")[0] in ROS_ROOTS or part(name) in ("ros", "msg", "srv")]
    assert not bad, "\n".join(bad)


def test_the_core_imports_no_source_adapter_or_command():
    core = [(mod, path) for mod, path in modules() if part(f"lrm4d_ros.{mod}") not in ADAPTERS + COMMANDS + ("",)]
    assert {"reconstructor", "model", "render.rasterize_numba", "gaussians", "baselines"} <= {m for m, _ in core}
    bad = [f"{path.relative_to(PKG.parent)}:{line} imports {name}"
           for mod, path in core for line, name in imports(path) if part(name) in ADAPTERS + COMMANDS]
    assert not bad, "\n".join(bad)


def test_no_module_but_a_command_imports_a_command_module():
    bad = [f"{path.relative_to(PKG.parent)}:{line} imports {name}"
           for mod, path in modules() if part(f"lrm4d_ros.{mod}") not in COMMANDS and mod != "viewer.command"
           for line, name in imports(path) if part(name) in COMMANDS]
    assert not bad, "\n".join(bad)

"""lrm4d_ros: 4D-LRM (feed-forward space-time Gaussian reconstruction) for ROS 2.

Everything in this package except `lrm4d_ros.ros` is plain Python + PyTorch and imports no ROS module.

`colcon build` installs the generated interfaces (`lrm4d_ros.msg`, `lrm4d_ros.srv` and their type-support
libraries) beside an installed copy of this package. When the source tree shadows that copy on sys.path (running
from the repository root, or an editable pip install), those generated modules, and only they, are taken from
the other `lrm4d_ros` directories on sys.path and from this checkout's own colcon install: a module deleted or
renamed here must not keep importing from a stale installed copy.
"""
import importlib.machinery as _machinery
import pkgutil as _pkgutil
import sys as _sys
from pathlib import Path as _Path

__version__ = "0.1.0"

_HERE = _Path(__file__).resolve().parent
# every other lrm4d_ros directory: those on sys.path (a sourced colcon install), then this checkout's install
_BUILT = sorted((_HERE.parent / "install" / "lrm4d_ros" / "lib").glob("python3*/site-packages/lrm4d_ros"))
INSTALLED = [d for d in dict.fromkeys(_pkgutil.extend_path([], __name__) + [str(p) for p in _BUILT])
             if _Path(d).resolve() != _HERE]


def _generated(name: str) -> bool:
    """Whether `name` (under lrm4d_ros) is what rosidl generates: msg, srv and `lrm4d_ros_s__rosidl_typesupport_*`."""
    return name in ("msg", "srv") or name.startswith(f"{__name__}_s__rosidl_typesupport_")


class _GeneratedInterfaces:
    """A sys.meta_path finder of lrm4d_ros's generated modules in the INSTALLED directories."""

    @staticmethod
    def find_spec(fullname, path=None, target=None):
        package, _, sub = fullname.partition(".")
        if package != __name__ or "." in sub or not _generated(sub):
            return None  # anything else: the ordinary search (of this directory alone, for lrm4d_ros.*)
        return _machinery.PathFinder.find_spec(fullname, INSTALLED)


if not any(type(f).__name__ == "_GeneratedInterfaces" for f in _sys.meta_path):  # once, even if reloaded
    _sys.meta_path.insert(0, _GeneratedInterfaces())

"""lrm4d_ros: 4D-LRM (feed-forward space-time Gaussian reconstruction) for ROS 2.

Everything in this package except `lrm4d_ros.ros` is plain Python + PyTorch and imports no ROS module.

`colcon build` installs the generated interfaces (`lrm4d_ros.msg`, `lrm4d_ros.srv`) beside an installed copy of
this package. When the source tree shadows that copy on sys.path (running from the repository root, or an
editable pip install), the package path is extended to every `lrm4d_ros` directory on sys.path and to this
checkout's own colcon install, so the generated modules import either way.
"""
import pkgutil as _pkgutil
from pathlib import Path as _Path

__version__ = "0.1.0"
__path__ = _pkgutil.extend_path(__path__, __name__)
__path__ += [str(p) for p in sorted((_Path(__file__).resolve().parents[1] / "install" / "lrm4d_ros" / "lib")
                                    .glob("python3*/site-packages/lrm4d_ros")) if str(p) not in __path__]

"""The ROS 2 adapter: the reconstruct node and message ⇄ numpy/torch conversions (the only place importing ROS).

`colcon build` installs the generated interfaces (`lrm4d_ros.msg`, `lrm4d_ros.srv`) beside an installed copy of
this package. When the source tree shadows that copy on sys.path (running from the repository root, or an
editable pip install), the generated modules would be invisible; extending the package path to every
`lrm4d_ros` directory on sys.path makes them importable from either copy.
"""
import pkgutil

import lrm4d_ros as _pkg

_pkg.__path__ = pkgutil.extend_path(_pkg.__path__, _pkg.__name__)

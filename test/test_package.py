"""The package's own import machinery (lrm4d_ros/__init__.py): from a source checkout, colcon's generated
interfaces come from the install, and nothing else does."""
import importlib
import sys
from pathlib import Path

import pytest

import lrm4d_ros


def test_only_generated_modules_come_from_an_installed_copy(tmp_path, monkeypatch):
    installed = tmp_path / "lrm4d_ros"  # a stale install: a module since deleted from the source, and rosidl's
    installed.mkdir()
    (installed / "ghost_module.py").write_text("VALUE = 1\n")
    (installed / "lrm4d_ros_s__rosidl_typesupport_fake.py").write_text("VALUE = 2\n")
    monkeypatch.setattr(lrm4d_ros, "INSTALLED", [str(installed)])
    for name in ("lrm4d_ros.ghost_module", "lrm4d_ros.lrm4d_ros_s__rosidl_typesupport_fake"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("lrm4d_ros.ghost_module")
    assert importlib.import_module("lrm4d_ros.lrm4d_ros_s__rosidl_typesupport_fake").VALUE == 2
    monkeypatch.delitem(sys.modules, "lrm4d_ros.lrm4d_ros_s__rosidl_typesupport_fake")
    assert [Path(d).resolve() for d in lrm4d_ros.__path__] == [lrm4d_ros._HERE]  # not extended

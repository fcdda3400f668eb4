"""Gaussian splat PLY files: 3DGS in the graphdeco layout, and a 4D extension of it.

3DGS (what graphdeco's loader, SuperSplat and @playcanvas/splat-transform read), one binary little-endian
`vertex` element of float32 properties: x y z, nx ny nz (zeros), f_dc_0..2 = (rgb − 0.5)/C0 (SH degree 0, so
no f_rest_*), opacity = logit(o), scale_0..2 = log σ, rot_0..3 = quaternion wxyz.
4D: the same plus t (time), scale_t = log σ_t, and rot_r_0..3 (the right isoclinic quaternion, wxyz; rot_0..3
holds the left one). Units are whatever the Gaussians are in (the pipeline writes metres and seconds since the
window start); the window's absolute stamps may be stored in a header comment `lrm4d_window_ns START END`, and a
3D slice's stamp in `lrm4d_stamp_ns STAMP` (int64 ns). Both are in the frame the package works in: the ROS world
frame, z up (a y-up 3DGS viewer shows the floor standing: rotate it −90° about x).

Two levels: `write_ply_fields`/`read_ply_fields` move the stored float32 columns byte-exactly;
`write_ply_3dgs`/`read_ply_3dgs` and `write_ply_4d`/`read_ply_4d` encode/decode Gaussians around them
(`read_ply_gaussians`: either, whichever the file holds, read once).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from plyfile import PlyData, PlyElement

from .cameras import TimeWindow
from .gaussians import Gaussians3D, Gaussians4D

SH_C0 = 0.28209479177387814  # zeroth real spherical harmonic, 1 / (2√π)
FIELDS_3DGS = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
               "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
FIELDS_4D = FIELDS_3DGS + ["t", "scale_t", "rot_r_0", "rot_r_1", "rot_r_2", "rot_r_3"]
WINDOW_COMMENT = "lrm4d_window_ns"
STAMP_COMMENT = "lrm4d_stamp_ns"
# Keeps log/logit finite: a zero scale or an opacity of exactly 0 or 1 would otherwise be stored as ±inf.
_TINY = 1e-12
_ZERO_LOGIT = float(np.log(2 * _TINY))  # stored opacities at or below this logit are read back as 0


def write_ply_fields(path: str | Path, fields: dict[str, np.ndarray], comments: list[str] | None = None) -> None:
    """Write equal-length 1D columns as float32 properties of one binary little-endian `vertex` element, with
    optional header comments."""
    lengths = {len(v) for v in fields.values()}
    if len(lengths) != 1:
        raise ValueError(f"all PLY columns must have the same length, got {sorted(lengths)}")
    n = lengths.pop()
    data = np.empty(n, dtype=[(name, "<f4") for name in fields])
    for name, values in fields.items():
        data[name] = np.asarray(values, dtype=np.float32)
    PlyData([PlyElement.describe(data, "vertex")], text=False, byte_order="<",
            comments=comments or []).write(str(path))


def _vertex(path: str | Path) -> np.ndarray:
    """The `vertex` element's records (a structured array over the file, memory-mapped where it is binary)."""
    ply = PlyData.read(str(path))
    if "vertex" not in ply:
        raise ValueError(f"{path}: no 'vertex' element")
    return ply["vertex"].data


def _require(vertex: np.ndarray, names: list[str], path: str | Path) -> None:
    missing = [name for name in names if name not in vertex.dtype.names]
    if missing:
        raise ValueError(f"{path}: missing PLY properties {missing}")


def _columns(vertex: np.ndarray, names: list[str], path: str | Path) -> dict[str, np.ndarray]:
    """Float32 columns (N,) of `names` alone: another tool's PLY holds 45 more (SH degree 3) that nothing here
    reads, and converting them was most of a million-Gaussian file's load time."""
    _require(vertex, names, path)
    return {name: np.ascontiguousarray(vertex[name], dtype=np.float32) for name in names}


def read_ply_fields(path: str | Path, required: list[str] | None = None) -> dict[str, np.ndarray]:
    """Float32 columns (N,) of the `vertex` element, exactly as stored; checks `required` names exist."""
    vertex = _vertex(path)
    _require(vertex, required or [], path)
    return _columns(vertex, list(vertex.dtype.names), path)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _TINY, 1.0 - _TINY)
    return np.log(p) - np.log1p(-p)


def _common_fields(means, colors, opacities, scales, quats) -> dict[str, np.ndarray]:
    means, colors, scales, quats = _np(means), _np(colors), _np(scales), _np(quats)
    n = means.shape[0]
    f_dc = (colors - 0.5) / SH_C0
    log_s = np.log(np.maximum(scales, _TINY))
    fields = {"x": means[:, 0], "y": means[:, 1], "z": means[:, 2]}
    fields.update({k: np.zeros(n) for k in ("nx", "ny", "nz")})
    fields.update({f"f_dc_{i}": f_dc[:, i] for i in range(3)})
    fields["opacity"] = _logit(_np(opacities))
    fields.update({f"scale_{i}": log_s[:, i] for i in range(3)})
    fields.update({f"rot_{i}": quats[:, i] for i in range(4)})
    return fields


def _stack(fields: dict[str, np.ndarray], names: list[str]) -> torch.Tensor:
    return torch.from_numpy(np.stack([fields[n] for n in names], axis=-1))


def _quats(fields: dict[str, np.ndarray], prefix: str) -> torch.Tensor:
    q = _stack(fields, [f"{prefix}{i}" for i in range(4)])
    # Loaders normalise on read (graphdeco does); a zero quaternion cannot be a rotation.
    norm = q.norm(dim=-1, keepdim=True)
    if bool((norm == 0).any()):
        raise ValueError(f"zero quaternion in {prefix}0..3")
    return q / norm


def _sigmoid(x: np.ndarray) -> torch.Tensor:
    # An opacity of exactly 0 (a reconstruction's hidden Gaussians, shown only from their own camera) is stored as
    # logit(_TINY) and read back as 0, so that slicing drops them after a round trip as it did before it.
    x = torch.from_numpy(x)
    return torch.where(x <= _ZERO_LOGIT, 0.0, torch.sigmoid(x))


def write_ply_3dgs(path: str | Path, g: Gaussians3D, stamp_ns: int | None = None) -> None:
    """Write Gaussians3D (any units) as a graphdeco 3DGS PLY; `stamp_ns`, the moment they are a slice of, goes in
    a header comment, read back by `read_ply_stamp`."""
    scales, quats = g.scales_quats()
    write_ply_fields(path, _common_fields(g.means, g.colors, g.opacities, scales, quats),
                     None if stamp_ns is None else [f"{STAMP_COMMENT} {int(stamp_ns)}"])


_READ_3DGS = [n for n in FIELDS_3DGS if n not in ("nx", "ny", "nz")]
_READ_4D = [n for n in FIELDS_4D if n not in ("nx", "ny", "nz")]


def read_ply_3dgs(path: str | Path) -> Gaussians3D:
    """Read a graphdeco 3DGS PLY (only SH degree 0 colour is used) -> float32 Gaussians3D."""
    return _gaussians_3dgs(_columns(_vertex(path), _READ_3DGS, path))


def _gaussians_3dgs(f: dict[str, np.ndarray]) -> Gaussians3D:
    return Gaussians3D.from_scales_quats(
        means=_stack(f, ["x", "y", "z"]),
        scales=torch.exp(_stack(f, ["scale_0", "scale_1", "scale_2"])),
        quats=_quats(f, "rot_"),
        opacities=_sigmoid(f["opacity"]),
        colors=_stack(f, ["f_dc_0", "f_dc_1", "f_dc_2"]) * SH_C0 + 0.5,
    )


def write_ply_4d(path: str | Path, g: Gaussians4D, window: TimeWindow | None = None) -> None:
    """Write Gaussians4D: the 3DGS columns (rot_* = left quaternion) plus t, scale_t, rot_r_*; `window` (the
    absolute stamps that t counts from) goes in a header comment, read back by `read_ply_window`."""
    scales, scale_t, quats_l, quats_r = g.rotations()
    fields = _common_fields(g.means, g.colors, g.opacities, scales, quats_l)
    fields["t"] = _np(g.times)
    fields["scale_t"] = np.log(np.maximum(_np(scale_t), _TINY))
    q_r = _np(quats_r)
    fields.update({f"rot_r_{i}": q_r[:, i] for i in range(4)})
    comments = None if window is None else [f"{WINDOW_COMMENT} {window.start_ns} {window.end_ns}"]
    write_ply_fields(path, fields, comments)


def read_ply_4d(path: str | Path) -> Gaussians4D:
    """Read a PLY written by `write_ply_4d` -> float32 Gaussians4D."""
    return _gaussians_4d(_columns(_vertex(path), _READ_4D, path))


def read_ply_gaussians(path: str | Path) -> Gaussians4D | Gaussians3D:
    """A PLY read once: Gaussians4D where it holds `write_ply_4d`'s columns, else Gaussians3D of a 3DGS PLY
    (`read_ply_3dgs`); ValueError naming the 3DGS properties it lacks where it is neither."""
    vertex = _vertex(path)
    if set(_READ_4D) <= set(vertex.dtype.names):
        return _gaussians_4d(_columns(vertex, _READ_4D, path))
    return _gaussians_3dgs(_columns(vertex, _READ_3DGS, path))


def _gaussians_4d(f: dict[str, np.ndarray]) -> Gaussians4D:
    return Gaussians4D.from_rotations(
        means=_stack(f, ["x", "y", "z"]),
        times=torch.from_numpy(f["t"]),
        scales=torch.exp(_stack(f, ["scale_0", "scale_1", "scale_2"])),
        scale_t=torch.exp(torch.from_numpy(f["scale_t"])),
        quats_l=_quats(f, "rot_"),
        quats_r=_quats(f, "rot_r_"),
        opacities=_sigmoid(f["opacity"]),
        colors=_stack(f, ["f_dc_0", "f_dc_1", "f_dc_2"]) * SH_C0 + 0.5,
    )


def _comment(path: str | Path, key: str, count: int) -> list[int] | None:
    """The `count` integers of header comment `key` in `path`, or None when it has none."""
    with open(path, "rb") as f:
        for _ in range(1000):  # a PLY header is a few dozen lines
            line = f.readline()
            if not line or line.strip() == b"end_header":
                break
            words = line.split()
            if words[:2] == [b"comment", key.encode()] and len(words) == 2 + count:
                return [int(w) for w in words[2:]]
    return None


def read_ply_window(path: str | Path) -> TimeWindow | None:
    """The window stored by `write_ply_4d` in the header of `path`, or None when it has none."""
    w = _comment(path, WINDOW_COMMENT, 2)
    return None if w is None else TimeWindow(*w)


def read_ply_stamp(path: str | Path) -> int | None:
    """The stamp (int64 ns) stored by `write_ply_3dgs` in the header of `path`, or None when it has none."""
    s = _comment(path, STAMP_COMMENT, 1)
    return None if s is None else s[0]

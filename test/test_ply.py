"""PLY: graphdeco 3DGS layout, 4D extension, byte-exact stored fields, decode ≈ encode."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from lrm4d_ros.gaussians import Gaussians3D, Gaussians4D
from lrm4d_ros.ply import (FIELDS_3DGS, FIELDS_4D, SH_C0, read_ply_3dgs, read_ply_4d, read_ply_fields,
                           write_ply_3dgs, write_ply_4d, write_ply_fields)


def _unit_quats(n, g):
    return torch.nn.functional.normalize(torch.randn(n, 4, generator=g, dtype=torch.float64), dim=-1)


def _g3(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    scales = torch.exp(torch.empty(n, 3, dtype=torch.float64).uniform_(-5, 0, generator=g))
    means = torch.randn(n, 3, generator=g, dtype=torch.float64) * 3
    opacities = torch.rand(n, generator=g, dtype=torch.float64) * 0.98 + 0.01
    g64 = Gaussians3D.from_scales_quats(means, scales, _unit_quats(n, g), opacities,
                                        torch.rand(n, 3, generator=g, dtype=torch.float64))
    return Gaussians3D(g64.means.float(), g64.covars.float(), g64.opacities.float(), g64.colors.float())


def _g4(n=64, seed=1):
    g = torch.Generator().manual_seed(seed)
    return Gaussians4D.from_rotations(
        means=torch.randn(n, 3, generator=g), times=torch.rand(n, generator=g) * 2.0,
        scales=torch.exp(torch.empty(n, 3).uniform_(-5, -1, generator=g)),
        scale_t=torch.exp(torch.empty(n).uniform_(-3, 0, generator=g)),
        quats_l=_unit_quats(n, g).float(), quats_r=_unit_quats(n, g).float(),
        opacities=torch.rand(n, generator=g) * 0.98 + 0.01, colors=torch.rand(n, 3, generator=g))


def _raw_vertex(path, names):
    """Decode the binary payload without plyfile: header up to 'end_header\\n', then packed <f4 records."""
    data = open(path, "rb").read()
    body = data[data.index(b"end_header\n") + len(b"end_header\n"):]
    return np.frombuffer(body, dtype=[(n, "<f4") for n in names])


def test_3dgs_header_is_graphdeco_layout(tmp_path):
    p = tmp_path / "a.ply"
    write_ply_3dgs(p, _g3(5))
    header = open(p, "rb").read().split(b"end_header\n")[0].decode()
    assert "format binary_little_endian 1.0" in header and "element vertex 5" in header
    assert [ln.split()[-1] for ln in header.splitlines() if ln.startswith("property")] == FIELDS_3DGS
    assert all(ln.startswith("property float ") for ln in header.splitlines() if ln.startswith("property"))


def test_3dgs_encoding_of_known_values(tmp_path):
    g = Gaussians3D.from_scales_quats(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[1.0, 0.5, 2.0]]),
                                      torch.tensor([[1.0, 0.0, 0.0, 0.0]]), torch.tensor([0.5]),
                                      torch.tensor([[0.5, 1.0, 0.0]]))
    p = tmp_path / "k.ply"
    write_ply_3dgs(p, g)
    f = read_ply_fields(p)
    assert (f["x"][0], f["y"][0], f["z"][0]) == (1.0, 2.0, 3.0)
    assert abs(f["opacity"][0]) < 1e-6
    np.testing.assert_allclose([f["f_dc_0"][0], f["f_dc_1"][0], f["f_dc_2"][0]], [0, 0.5 / SH_C0, -0.5 / SH_C0],
                               rtol=1e-6)
    np.testing.assert_allclose(sorted([f[f"scale_{i}"][0] for i in range(3)]), sorted(np.log([1.0, 0.5, 2.0])),
                               atol=1e-6)
    q = torch.tensor([f[f"rot_{i}"][0] for i in range(4)])
    assert abs(q.norm().item() - 1.0) < 1e-6
    torch.testing.assert_close(read_ply_3dgs(p).covars[0], torch.diag(torch.tensor([1.0, 0.25, 4.0])),
                               atol=1e-5, rtol=1e-5)


def test_3dgs_stored_fields_are_byte_exact(tmp_path):
    a, b = tmp_path / "a.ply", tmp_path / "b.ply"
    write_ply_3dgs(a, _g3())
    fields = read_ply_fields(a)
    raw = _raw_vertex(a, FIELDS_3DGS)
    for name in FIELDS_3DGS:
        assert fields[name].dtype == np.float32
        assert np.array_equal(fields[name].view(np.uint32), raw[name].view(np.uint32))
    write_ply_fields(b, fields)
    assert a.read_bytes() == b.read_bytes()


def test_3dgs_decode_matches_gaussians(tmp_path):
    g = _g3()
    p = tmp_path / "a.ply"
    write_ply_3dgs(p, g)
    r = read_ply_3dgs(p)
    assert torch.equal(r.means, g.means)
    torch.testing.assert_close(r.covars, g.covars, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(r.opacities, g.opacities, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(r.colors, g.colors, rtol=1e-5, atol=1e-6)


def test_4d_round_trip_and_slices(tmp_path):
    g = _g4()
    a, b = tmp_path / "a.ply", tmp_path / "b.ply"
    write_ply_4d(a, g)
    header = a.read_bytes().split(b"end_header\n")[0].decode()
    assert [ln.split()[-1] for ln in header.splitlines() if ln.startswith("property")] == FIELDS_4D
    fields = read_ply_fields(a)
    write_ply_fields(b, fields)
    assert a.read_bytes() == b.read_bytes()
    r = read_ply_4d(a)
    assert torch.equal(r.means, g.means) and torch.equal(r.times, g.times)
    for name in ("opacities", "colors", "scale_t"):
        torch.testing.assert_close(getattr(r, name), getattr(g, name), rtol=1e-5, atol=1e-6)
    # the stored paper form (scales, quaternions) rebuilds the same 4D covariance, velocities included
    torch.testing.assert_close(r.covariance(), g.covariance(), rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(r.velocities, g.velocities, rtol=1e-3, atol=1e-5)
    s_orig, s_read = g.slice(1.0, min_marginal=0.0), r.slice(1.0, min_marginal=0.0)
    torch.testing.assert_close(s_read.means, s_orig.means, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(s_read.covars, s_orig.covars, rtol=1e-3, atol=1e-6)


def test_zero_opacity_round_trips_and_slices_drop_it(tmp_path):
    # a reconstruction's hidden Gaussians have opacity 0: a PLY keeps it 0, so a slice of what was read drops them
    g = _g4()
    opacities = g.opacities.clone()
    opacities[::4] = 0.0
    g = replace(g, opacities=opacities)
    write_ply_4d(tmp_path / "g.ply", g)
    r = read_ply_4d(tmp_path / "g.ply")
    assert torch.equal(r.opacities == 0, opacities == 0) and int((r.opacities == 0).sum()) == 16
    assert len(r.slice(1.0, min_marginal=1e-9)) == len(g.slice(1.0, min_marginal=1e-9)) <= 48
    g3 = _g3()
    g3.opacities[::4] = 0.0
    write_ply_3dgs(tmp_path / "s.ply", g3)
    r3 = read_ply_3dgs(tmp_path / "s.ply")
    assert torch.equal(r3.opacities == 0, g3.opacities == 0)
    torch.testing.assert_close(r3.opacities, g3.opacities, rtol=1e-5, atol=1e-6)


def test_4d_window_stamps_in_the_header(tmp_path):
    from lrm4d_ros.cameras import TimeWindow
    from lrm4d_ros.ply import read_ply_window

    g, a, b = _g4(), tmp_path / "a.ply", tmp_path / "b.ply"
    window = TimeWindow(1_700_000_000_123_456_789, 1_700_000_000_456_789_123)  # beyond float64's exact integers
    write_ply_4d(a, g, window)
    write_ply_4d(b, g)
    assert read_ply_window(a) == window and read_ply_window(b) is None
    assert b"comment lrm4d_window_ns 1700000000123456789 1700000000456789123\n" in a.read_bytes()
    r = read_ply_4d(a)  # the comment does not disturb the columns
    assert torch.equal(r.means, g.means) and torch.equal(r.times, g.times)


def test_missing_property_is_a_clear_error(tmp_path):
    p = tmp_path / "bad.ply"
    write_ply_fields(p, {"x": np.zeros(3), "y": np.zeros(3), "z": np.zeros(3)})
    with pytest.raises(ValueError, match="opacity"):
        read_ply_3dgs(p)
    with pytest.raises(ValueError, match="same length"):
        write_ply_fields(p, {"x": np.zeros(3), "y": np.zeros(2)})


def test_a_slice_stamp_in_the_header(tmp_path):
    """slice.ply says which moment it is (int64 ns, exactly); the columns are those of a file without it."""
    from lrm4d_ros.ply import read_ply_stamp

    g3, a, b = _g3(), tmp_path / "a.ply", tmp_path / "b.ply"
    write_ply_3dgs(a, g3, 1_700_000_000_123_456_789)
    write_ply_3dgs(b, g3)
    assert read_ply_stamp(a) == 1_700_000_000_123_456_789 and read_ply_stamp(b) is None
    assert b"comment lrm4d_stamp_ns 1700000000123456789\n" in a.read_bytes()
    ra, rb = read_ply_3dgs(a), read_ply_3dgs(b)
    assert torch.equal(ra.means, rb.means) and torch.equal(ra.covars, rb.covars)


def test_read_ply_gaussians_reads_whichever_layout_the_file_holds(tmp_path):
    """One read for `lrm4d view`: a 4D file gives Gaussians4D, a 3DGS file (here another tool's, with SH degree 3
    columns that nothing reads) Gaussians3D, each equal to its own reader's; neither names what a 3DGS file lacks."""
    from lrm4d_ros.ply import read_ply_gaussians

    p4 = tmp_path / "g4.ply"
    write_ply_4d(p4, _g4())
    got4, want4 = read_ply_gaussians(p4), read_ply_4d(p4)
    assert isinstance(got4, Gaussians4D)
    for a, b in zip(vars(got4).values(), vars(want4).values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    p3 = tmp_path / "point_cloud.ply"
    write_ply_3dgs(tmp_path / "plain.ply", _g3())
    fields = read_ply_fields(tmp_path / "plain.ply")
    fields.update({f"f_rest_{i}": np.full(len(fields["x"]), 0.1 * i, np.float32) for i in range(45)})
    write_ply_fields(p3, fields)
    got3 = read_ply_gaussians(p3)
    assert isinstance(got3, Gaussians3D)
    for a, b in zip(vars(got3).values(), vars(read_ply_3dgs(tmp_path / "plain.ply")).values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    half = tmp_path / "half.ply"
    write_ply_fields(half, {k: fields[k] for k in ("x", "y", "z", "opacity")})
    with pytest.raises(ValueError, match=r"missing PLY properties \['f_dc_0'"):
        read_ply_gaussians(half)

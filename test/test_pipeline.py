"""`lrm4d reconstruct`: windows, camera paths, and a bag → output bag run with a tiny random model."""
import math

import numpy as np
import pytest
import torch

from lrm4d_ros.data.rigs import look_at
from lrm4d_ros.pipeline import Span, estimate_up, frame_indices, make_windows, orbit_path, parse_resolution
from lrm4d_ros.views import ViewSet

BASE_NS = 1_700_000_123_456_789_000


def _views(T=10, C=3, period_ns=100_000_000, offset_ns=7_000_000):
    """T frames x C cameras, camera c offset by c*offset_ns (unsynchronised), frame-major, shuffled order."""
    stamps = torch.tensor([BASE_NS + f * period_ns + c * offset_ns for f in range(T) for c in range(C)])
    ids = torch.tensor([c for f in range(T) for c in range(C)])
    perm = torch.randperm(T * C, generator=torch.Generator().manual_seed(0))
    n = T * C
    return ViewSet(torch.zeros(n, 4, 4, 3), torch.eye(3, dtype=torch.float64).repeat(n, 1, 1),
                   torch.eye(4, dtype=torch.float64).repeat(n, 1, 1), stamps[perm], ids[perm])


def test_span_parse():
    assert Span.parse("8") == Span(8, "frames")
    assert Span.parse("0.5s") == Span(0.5, "s")
    for bad in ("0", "-1", "2.5", "abc", "1m"):
        with pytest.raises(ValueError):
            Span.parse(bad)


def test_frame_indices_rank_per_camera():
    v = _views()
    f = frame_indices(v)
    expect = (v.stamps_ns - BASE_NS - v.camera_ids * 7_000_000) // 100_000_000
    assert torch.equal(f, expect)


@pytest.mark.parametrize("length,stride,frames", [
    ("4", "2", [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7], [6, 7, 8, 9]]),
    ("4", "3", [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]),
    ("8", "4", [[0, 1, 2, 3, 4, 5, 6, 7], [2, 3, 4, 5, 6, 7, 8, 9]]),  # last window ends at the last frame
    ("20", "5", [list(range(10))]),
    ("0.35s", "0.2s", [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7], [6, 7, 8, 9]]),
])
def test_windows_cover_and_own_each_view_once(length, stride, frames):
    v = _views()
    wins = make_windows(v, Span.parse(length), Span.parse(stride))
    f = frame_indices(v)
    assert [sorted(set(f[w.views].tolist())) for w in wins] == frames
    owned = torch.cat([w.own for w in wins])
    assert sorted(owned.tolist()) == list(range(len(v)))  # a partition: every view rendered exactly once
    for w in wins:
        assert set(w.own.tolist()) <= set(w.views.tolist())
        assert int(w.mid_ns) in v.stamps_ns[w.views].tolist()
        # An owned view is nearer this window's middle than any other window's middle holding it.
        mids = {o.index: (int(v.stamps_ns[o.views].min()) + int(v.stamps_ns[o.views].max())) // 2 for o in wins}
        for i in w.own.tolist():
            d = abs(int(v.stamps_ns[i]) - mids[w.index])
            assert all(d <= abs(int(v.stamps_ns[i]) - mids[o.index]) for o in wins if i in o.views.tolist())


def test_windows_reject_mixed_units():
    with pytest.raises(ValueError, match="both be frames or both seconds"):
        make_windows(_views(), Span.parse("4"), Span.parse("0.2s"))


def _ring(n=5, radius=2.0, height=0.8, center=(0.3, -0.2, 0.1), up=(0.0, 0.0, 1.0), start=0.4):
    """Cameras on a horizontal ring looking at `center` (world z up)."""
    a = start + torch.arange(n, dtype=torch.float64) * (2 * math.pi / n) + 0.1 * torch.arange(n) ** 2
    c = torch.tensor(center, dtype=torch.float64)
    eyes = c + torch.stack([radius * torch.cos(a), radius * torch.sin(a), torch.full_like(a, height)], -1)
    return look_at(eyes, c.expand(n, 3), up), c


def test_estimate_up_of_a_ring_and_a_tilted_world():
    c2w, _ = _ring()
    assert torch.allclose(estimate_up(c2w), torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), atol=1e-9)
    # The same rig rotated 30 degrees about x: up rotates with it.
    a = math.radians(30)
    Rx = torch.tensor([[1, 0, 0, 0], [0, math.cos(a), -math.sin(a), 0], [0, math.sin(a), math.cos(a), 0],
                       [0, 0, 0, 1]], dtype=torch.float64)
    assert torch.allclose(estimate_up(Rx @ c2w), Rx[:3, 2], atol=1e-9)


def test_orbit_path_circles_the_centre_looking_at_it():
    c2w, center = _ring()
    path = orbit_path(c2w, 12, center=center)
    eye = path[:, :3, 3]
    rel = eye - center
    assert torch.allclose(rel[:, 2], torch.full((12,), 0.8, dtype=torch.float64), atol=1e-9)  # ring height
    assert torch.allclose(rel[:, :2].norm(dim=-1), torch.full((12,), 2.0, dtype=torch.float64), atol=1e-9)
    # Starts at the first camera, steps by 30 degrees, and every camera looks at the centre, image y down.
    assert torch.allclose(eye[0], c2w[0, :3, 3], atol=1e-9)
    step = torch.atan2(rel[1, 1], rel[1, 0]) - torch.atan2(rel[0, 1], rel[0, 0])
    assert math.isclose(float(step) % (2 * math.pi), math.pi / 6, abs_tol=1e-9)
    assert torch.allclose(path[:, :3, 2], -rel / rel.norm(dim=-1, keepdim=True), atol=1e-9)
    assert (path[:, 2, 1] < 0).all()  # optical y points down in a z-up world
    assert torch.allclose(path[:, :3, :3].det(), torch.ones(12, dtype=torch.float64), atol=1e-9)


def test_parse_resolution():
    assert parse_resolution(None, 48, 64) == (48, 64)
    assert parse_resolution("24x40", 48, 64) == (24, 40)
    assert parse_resolution("24", 48, 64) == (24, 32)
    with pytest.raises(ValueError):
        parse_resolution("0x3", 48, 64)

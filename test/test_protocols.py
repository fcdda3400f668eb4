"""The rig protocol's split (docs/design.md §5): inputs, stride and target groups on small T×C grids."""
import pytest
import torch

from lrm4d_ros.data.protocols import RIG_GROUPS, protocol_groups, protocol_indices, rig_stride, split_protocol
from lrm4d_ros.views import ViewSet

BASE, PERIOD = 10**18, 10**8


def _rig(T, names):
    """T frames of cameras `names` (in this id order) with per-view jitter < 1 ms, views shuffled."""
    C = len(names)
    g = torch.Generator().manual_seed(T * C)
    stamps = BASE + torch.arange(T)[:, None] * PERIOD + torch.randint(0, 10**6, (T, C), generator=g)
    perm = torch.randperm(T * C, generator=g)
    V = T * C
    return ViewSet(images=torch.zeros(V, 2, 2, 3), Ks=torch.eye(3, dtype=torch.float64).expand(V, 3, 3),
                   camtoworlds=torch.eye(4, dtype=torch.float64).expand(V, 4, 4),
                   stamps_ns=stamps.reshape(-1)[perm], camera_ids=torch.arange(C).repeat(T)[perm],
                   camera_names=list(names))


def _pairs(views, idx):
    """[(frame, camera name)] of views idx, in the given order."""
    return [(int((views.stamps_ns[i] - BASE) // PERIOD), views.camera_names[int(views.camera_ids[i])]) for i in idx]


def test_rig_stride_is_the_documented_formula():
    # s = ceil(T * ceil(C/2) / 12)
    assert [rig_stride(T, C) for T, C in [(12, 6), (12, 8), (13, 8), (24, 6), (4, 6), (12, 2), (1, 3)]] == \
        [3, 4, 5, 6, 1, 1, 1]


def test_rig_groups_by_camera_name_within_the_input_span():
    names = ["c", "a", "e", "b", "d", "f"]  # sorted: a b c d e f -> even-indexed a, c, e; odd b, d, f
    views = _rig(12, names)
    inputs, groups = protocol_groups(views, "rig")
    assert list(groups) == list(RIG_GROUPS)
    in_frames, other = [0, 3, 6, 9], [1, 2, 4, 5, 7, 8]  # s = 3; frames 10 and 11 lie past the last input frame
    assert _pairs(views, inputs) == [(k, c) for k in in_frames for c in "ace"]
    assert _pairs(views, groups["novel_view"]) == [(k, c) for k in in_frames for c in "bdf"]
    assert _pairs(views, groups["novel_view_time"]) == [(k, c) for k in other for c in "bdf"]
    assert _pairs(views, groups["time_interp"]) == [(k, c) for k in other for c in "ace"]
    assert torch.equal(groups["self"], inputs)
    inp, held = protocol_indices(views, "rig")
    assert torch.equal(inp, inputs) and len(held) == 12 + 18 + 18
    i_views, t_views = split_protocol(views, "rig")
    assert len(i_views) == 12 and len(t_views) == 48


def test_rig_with_every_frame_an_input_and_with_odd_counts():
    views = _rig(4, [f"cam{i}" for i in range(6)])  # s = 1: all frames are input frames
    inputs, groups = protocol_groups(views, "rig")
    assert len(inputs) == 12 and len(groups["novel_view"]) == 12
    assert len(groups["novel_view_time"]) == 0 and len(groups["time_interp"]) == 0
    views = _rig(13, [f"cam{i}" for i in range(7)])  # C = 7: 4 even cameras, s = ceil(13*4/12) = 5
    inputs, groups = protocol_groups(views, "rig")
    assert _pairs(views, inputs) == [(k, f"cam{c}") for k in (0, 5, 10) for c in (0, 2, 4, 6)]
    assert len(groups["novel_view_time"]) == 8 * 3 and len(groups["time_interp"]) == 8 * 4
    with pytest.raises(ValueError, match="at least 2 cameras"):
        protocol_groups(_rig(3, ["only"]), "rig")


def test_old_protocols_have_one_group_and_sort_cameras_by_name():
    views = _rig(6, ["b", "a", "c"])
    inputs, groups = protocol_groups(views, "novel-camera")
    assert list(groups) == ["all"]
    assert _pairs(views, inputs) == [(k, "ac"[k % 2]) for k in range(6)]
    assert sorted(_pairs(views, groups["all"])) == [(k, "b") for k in range(6)]
    inputs, groups = protocol_groups(views, "alternating")
    assert _pairs(views, inputs) == [(k, "abc"[k % 3]) for k in range(6)]

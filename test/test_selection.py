"""select_views: spread over cameras and time for synchronized, unsynchronized and mixed-rate rigs."""
import random
from collections import Counter

import pytest

from lrm4d_ros.selection import POLICIES, select_views

S = 1_000_000_000
T0 = 1_700_000_000 * S
FRAME = S // 10  # 10 Hz


def picked(cands, idx):
    return [cands[i] for i in idx]


def test_synchronized_rig_uses_every_camera_at_evenly_spaced_distinct_instants():
    cands = [(T0 + f * FRAME, c) for f in range(20) for c in range(5)]
    chosen = picked(cands, select_views(cands, 12, "uniform"))
    per_cam = Counter(c for _, c in chosen)
    assert sorted(per_cam) == list(range(5)) and max(per_cam.values()) - min(per_cam.values()) <= 1
    frames = sorted((s - T0) // FRAME for s, _ in chosen)
    assert frames == [round(k * 19 / 11) for k in range(12)]  # exactly the evenly spaced instants, oldest/newest
    # the cameras take turns: consecutive instants never repeat a camera
    order = [c for _, c in sorted(chosen)]
    assert all(a != b for a, b in zip(order, order[1:]))


def test_latest_policy_on_a_synchronized_rig_takes_whole_newest_frames():
    cands = [(T0 + f * FRAME, c) for f in range(20) for c in range(5)]
    frames = Counter((s - T0) // FRAME for s, _ in picked(cands, select_views(cands, 12, "latest")))
    assert frames == {19: 5, 18: 5, 17: 2}


def test_frames_policy_gives_every_camera_the_same_evenly_spaced_instants_newest_included():
    # a synchronized rig: whole frames at the instants linspace(0, 19, 4) = 0, 6.3, 12.7, 19 are nearest to
    cands = [(T0 + f * FRAME, c) for f in range(20) for c in range(3)]
    frames = Counter((s - T0) // FRAME for s, _ in picked(cands, select_views(cands, 12, "frames")))
    assert frames == {0: 3, 6: 3, 13: 3, 19: 3}
    # six cameras, 12 views: the newest frame whole, and MIN_INSTANTS - 1 = 2 earlier instants (the window's start
    # and middle) of three cameras each, every camera at one of them
    cands = [(T0 + f * FRAME, c) for f in range(12) for c in range(6)]
    by_frame = {}
    for s, c in picked(cands, select_views(cands, 12, "frames")):
        by_frame.setdefault((s - T0) // FRAME, []).append(c)
    assert sorted(by_frame) == [0, 6, 11] and sorted(by_frame[11]) == list(range(6))  # linspace(0, 11, 3)[:-1]
    assert len(by_frame[0]) == len(by_frame[6]) == 3 and sorted(by_frame[0] + by_frame[6]) == list(range(6))
    # an unsynchronized rig (cameras 25 ms apart, jittered): each camera's frames nearest the window's start, the
    # buffered stamp nearest its middle, and its end
    rng = random.Random(0)
    cands = [(T0 + f * FRAME + c * S // 40 + rng.randrange(8_000_000), c) for f in range(20) for c in range(4)]
    chosen = picked(cands, select_views(cands, 12, "frames"))
    assert Counter(c for _, c in chosen) == {0: 3, 1: 3, 2: 3, 3: 3}
    lo, hi = min(s for s, _ in cands), max(s for s, _ in cands)
    mid = min((s for s, _ in cands), key=lambda s: abs(s - (lo + hi) / 2))  # an instant is a buffered stamp
    for cam in range(4):
        mine = sorted(s for s, c in chosen if c == cam)
        own = [s for s, c in cands if c == cam]
        assert mine == [min(own, key=lambda s: abs(s - t)) for t in (lo, mid, hi)], cam
    assert max(s for s, _ in cands) in [s for s, _ in chosen]


def test_mixed_rates_give_slow_cameras_all_their_views_and_share_the_rest():
    cands = ([(T0 + k * S // 30, 0) for k in range(60)] + [(T0 + k * FRAME + 3_000_000, 1) for k in range(20)]
             + [(T0 + S // 3 + k * S, 2) for k in range(2)])
    for policy in POLICIES:
        chosen = picked(cands, select_views(cands, 12, policy))
        assert Counter(c for _, c in chosen) == {0: 5, 1: 5, 2: 2}, policy
        assert max(s for s, _ in cands) in [s for s, _ in chosen]  # the newest view is always used
    uni = picked(cands, select_views(cands, 12, "uniform"))
    for cam in (0, 1):  # each camera's share spans most of the 2 s window, not one end of it
        stamps = sorted(s for s, c in uni if c == cam)
        assert stamps[-1] - stamps[0] >= 1.5 * S, cam


def test_unsynchronized_rig_is_balanced_and_spread():
    rng = random.Random(0)
    cands = [(T0 + f * FRAME + c * S // 40 + rng.randrange(8_000_000), c) for f in range(20) for c in range(4)]
    chosen = picked(cands, select_views(cands, 12, "uniform"))
    assert Counter(c for _, c in chosen) == {0: 3, 1: 3, 2: 3, 3: 3}
    stamps = sorted(s for s, _ in chosen)
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert stamps[0] == min(s for s, _ in cands) and stamps[-1] == max(s for s, _ in cands)
    assert max(gaps) < 2.2 * (stamps[-1] - stamps[0]) / 11  # no hole bigger than about two even steps


def test_more_cameras_than_views_rotates_so_every_camera_is_used():
    for policy in ("uniform", "frames"):
        used = set()
        for end in range(16, 19):  # three consecutive windows of a 16-camera synchronized rig
            cands = [(T0 + f * FRAME, c) for f in range(end - 15, end + 1) for c in range(16)]
            chosen = picked(cands, select_views(cands, 12, policy))
            assert len({c for _, c in chosen}) == 12 and max(s for s, _ in chosen) == T0 + end * FRAME
            used |= {c for _, c in chosen}
        assert used == set(range(16)), policy


def test_deterministic_and_independent_of_candidate_order():
    cands = [(T0 + f * FRAME + c * 1_000_000, c) for f in range(15) for c in range(3)]
    shuffled = cands[:]
    random.Random(1).shuffle(shuffled)
    for policy in POLICIES:
        assert set(picked(cands, select_views(cands, 7, policy))) == \
            set(picked(shuffled, select_views(shuffled, 7, policy)))


def test_few_candidates_all_kept_and_bad_arguments():
    cands = [(T0 + k * S, 0) for k in range(11)]
    assert select_views(cands, 3, "uniform") == [0, 5, 10]
    assert select_views(cands, 100, "latest") == list(range(11))
    with pytest.raises(ValueError, match="policy"):
        select_views(cands, 3, "random")
    with pytest.raises(ValueError, match="max_views"):
        select_views(cands, 0, "uniform")


@pytest.mark.parametrize("cams,views", [(4, 12), (4, 8), (3, 12), (2, 12), (4, 6)])
def test_synchronized_rig_newest_instant_goes_to_each_camera_in_turn(cams, views):
    # uniform gives a synchronized rig's newest instant to one camera; over consecutive frames every camera
    # must take it (it used to stay with camera 0 whenever views was a multiple of cams)
    newest_cams = []
    for end in range(20, 20 + cams):
        cands = [(T0 + f * FRAME, c) for f in range(end - 19, end + 1) for c in range(cams)]
        chosen = picked(cands, select_views(cands, views, "uniform"))
        newest_cams += [c for s, c in chosen if s == T0 + end * FRAME]
        assert len(chosen) == views and Counter(c for _, c in chosen).keys() == set(range(cams))
    assert sorted(newest_cams) == list(range(cams))


def test_a_depth_camera_offers_only_its_views_with_depth():
    """A camera whose views have depth at least every other frame offers the model only those (a dropped depth
    frame, depth at half the colour rate); the newest view stays whatever it holds; a camera with depth every third
    frame, or none, offers all its views (with_depth_first; ablation block 43)."""
    from lrm4d_ros.selection import DEPTH_FIRST_SHARE, with_depth_first

    assert DEPTH_FIRST_SHARE == 0.5
    cands, flags = [], []
    for f in range(12):
        for c, has in ((0, f % 2 == 0), (1, f % 3 == 0), (2, False), (3, f not in (4, 11))):
            cands.append((T0 + f * FRAME + c, c))  # camera 3's frame 11 is the newest view of all
            flags.append(has)
    pool = with_depth_first(cands, flags)
    kept = Counter(cands[i][1] for i in pool)
    assert kept == {0: 6, 1: 12, 2: 12, 3: 11}
    newest = max(range(len(cands)), key=lambda i: cands[i][0])
    assert newest in pool and not flags[newest]  # camera 3's frame 11, without depth: kept (the window's end)
    assert not any(cands[i][1] == 3 and (cands[i][0] - T0) // FRAME == 4 for i in pool)  # its dropped frame: out
    chosen = select_views(cands, 12, "uniform", flags)
    assert set(chosen) <= set(pool) and len(chosen) == 12 and newest in chosen
    assert all(flags[i] for i in chosen if cands[i][1] == 0)  # camera 0: only its frames with depth
    assert select_views(cands, 12, "uniform", None) == select_views(cands, 12, "uniform")
    with pytest.raises(ValueError, match="has_depth holds 3 flags for 48 candidates"):
        select_views(cands, 12, "uniform", [True] * 3)

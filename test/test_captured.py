"""A still input camera's in-between moments: unchanged pixels as captured, changed ones interpolated along the
flow between its two frames; every other target as rendered."""
import torch
import torch.nn.functional as F

from lrm4d_ros.captured import CapturedFrames
from lrm4d_ros.cameras import fov_to_K, scale_K
from lrm4d_ros.views import ViewSet


def _camera(x: float = 0.0) -> torch.Tensor:
    pose = torch.eye(4)
    pose[0, 3] = x
    return pose


def _frames() -> CapturedFrames:
    """One still camera, frames at t = -1, 0, 1: frame 1 differs from frame 0 in a 2×2 patch (rows/cols 10-11);
    a second camera elsewhere with the same intrinsics."""
    g = torch.Generator().manual_seed(0)
    f0 = torch.rand(24, 24, 3, generator=g)
    f1 = f0.clone()
    f1[10:12, 10:12] = 1 - f1[10:12, 10:12]
    f2 = torch.rand(24, 24, 3, generator=g)
    other = torch.rand(24, 24, 3, generator=g)
    K = torch.as_tensor(fov_to_K(1.0, 24, 24), dtype=torch.float32)
    return CapturedFrames(torch.stack([f0, f1, f2, other]), K.expand(4, 3, 3).clone(),
                          torch.stack([_camera(), _camera(), _camera(), _camera(1.0)]),
                          torch.tensor([-1.0, 0.0, 1.0, -0.5]))


def test_unchanged_pixels_are_the_frames_cross_faded_and_changed_ones_interpolated():
    frames = _frames()
    rendered = torch.full((1, 24, 24, 3), 0.25)
    t = -0.75  # a quarter of the way from frame 0 (t = -1) to frame 1 (t = 0)
    out = frames.show(rendered, _camera()[None], frames.Ks[:1], torch.tensor([t]))
    fade = 0.75 * frames.images[0] + 0.25 * frames.images[1]
    changed = torch.zeros(24, 24, dtype=torch.bool)
    changed[8:14, 8:14] = True  # the 2×2 patch grown by the 5×5 box
    torch.testing.assert_close(out[0][~changed], frames.images[0][~changed], atol=1e-6, rtol=0)  # nothing moved
    torch.testing.assert_close(out[0][~changed], fade[~changed], atol=1e-6, rtol=0)
    assert not torch.equal(out[0][changed], rendered[0][changed])  # what changed comes from the frames too


def _square_frames(x: int, size: int = 64) -> torch.Tensor:
    """A smooth textured background (fixed) with a red 10×10 square whose left edge is at column x."""
    g = torch.Generator().manual_seed(1)
    bg = F.interpolate(torch.rand(1, 3, 8, 8, generator=g), size=(size, size), mode="bicubic",
                       align_corners=False)[0].permute(1, 2, 0).clamp(0, 1) * 0.6
    img = bg.clone()
    img[27:37, x:x + 10] = torch.tensor([1.0, 0.1, 0.1])
    return img


def test_a_moving_square_is_shown_half_way_not_as_two_ghosts():
    f0, f1, half = _square_frames(20), _square_frames(26), _square_frames(23)
    K = torch.as_tensor(fov_to_K(1.0, 64, 64), dtype=torch.float32)
    frames = CapturedFrames(torch.stack([f0, f1]), K.expand(2, 3, 3).clone(), torch.stack([_camera(), _camera()]),
                            torch.tensor([0.0, 1.0]))
    out = frames.show(torch.zeros(1, 64, 64, 3), _camera()[None], K[None], torch.tensor([0.5]))[0]
    fade = 0.5 * (f0 + f1)  # the square's two ghosts, each at half strength
    err_out, err_fade = ((out - half) ** 2).mean(), ((fade - half) ** 2).mean()
    assert err_out < 0.5 * err_fade  # 0.4 measured: DIS finds 4 of the 6 px on the flat square (aperture)
    assert bool((out[28:36, 25:31, 0] > 0.9).all())  # the square, solid, half way
    # where it was: its ghost at half strength in the cross-fade, mostly gone here (0.28 against 0.57 measured)
    assert float(out[28:36, 20:22, 0].mean()) < 0.6 * float(fade[28:36, 20:22, 0].mean())


def test_only_an_input_camera_between_two_of_its_frames_is_touched():
    frames = _frames()
    rendered = torch.full((1, 24, 24, 3), 0.25)
    K = frames.Ks[:1]
    cases = {
        "at a frame's own moment (self)": (_camera(), K, -1.0),
        "before its first frame": (_camera(), K, -1.5),
        "after its last frame": (_camera(), K, 1.5),
        "from elsewhere": (_camera(0.01), K, -0.75),
        "with other intrinsics": (_camera(), K * torch.tensor([1.01, 1.0, 1.0])[:, None], -0.75),
        "the other camera, one frame": (_camera(1.0), K, -0.25),
    }
    for name, (pose, Ks, t) in cases.items():
        out = frames.show(rendered, pose[None], Ks, torch.tensor([t]))
        assert torch.equal(out, rendered), name
    # another size than the frames': left as rendered
    small = torch.full((1, 12, 12, 3), 0.25)
    assert torch.equal(frames.show(small, _camera()[None], K, torch.tensor([-0.75])), small)
    # several targets: each on its own
    two = torch.full((2, 24, 24, 3), 0.25)
    out = frames.show(two, torch.stack([_camera(0.5), _camera()]), K.expand(2, 3, 3), torch.tensor([-0.75, -0.75]))
    assert torch.equal(out[0], two[0]) and not torch.equal(out[1], two[1])


def test_a_reconstruction_shows_a_still_cameras_unchanged_pixels_as_captured():
    from lrm4d_ros.data.generator import SceneConfig, generate
    from lrm4d_ros.model import LRM4D, LRM4DConfig
    from lrm4d_ros.reconstructor import Reconstructor

    cfg = SceneConfig(frames=3, cameras=2, height=24, width=24, rig_kinds=("workcell",), ground_prob=1.0,
                      backdrop_prob=0.0, num_primitives=(2, 3))
    views = generate(1_000_011, cfg)
    torch.manual_seed(0)
    rec = Reconstructor(LRM4D(LRM4DConfig.preset("tiny", image_size=24)), "cpu", refine_steps=0)
    cam0 = torch.nonzero(views.camera_ids == 0).squeeze(1)
    cam0 = cam0[torch.argsort(views.stamps_ns[cam0])]
    first, last = int(cam0[0]), int(cam0[-1])
    inputs = views.select(torch.tensor([first, last]))
    r = rec.reconstruct(inputs)
    still = torch.allclose(views.camtoworlds[first], views.camtoworlds[last])
    mid = (views.stamps_ns[first] + views.stamps_ns[last]) // 2
    out = r.render(views.camtoworlds[first:first + 1], views.Ks[first:first + 1], 24, 24, mid[None])
    same = (inputs.images[0] - inputs.images[1]).abs().amax(-1) <= 2 / 255
    same = -torch.nn.functional.max_pool2d(-same[None, None].float(), 5, 1, 2)[0, 0] > 0
    fade = 0.5 * (inputs.images[0] + inputs.images[1])
    assert still and same.float().mean() > 0.3  # a workcell rig's cameras stand still; most of the scene does
    torch.testing.assert_close(out.colors[0][same], fade[same].clamp(0, 1), atol=1e-5, rtol=0)
    # at an input's own moment the render is the model's, not the frame
    own = r.render(views.camtoworlds[first:first + 1], views.Ks[first:first + 1], 24, 24,
                   views.stamps_ns[first:first + 1])
    assert not torch.allclose(own.colors[0], inputs.images[0], atol=1e-3)


def test_frames_at_their_own_resolution_serve_targets_at_it():
    """The model saw the frames at 32²; a target at the views' own 64² and intrinsics is served from the 64²
    frames, along the 32² flows scaled up: the moving square solid half way, the still background as captured."""
    f0, f1, half = _square_frames(20), _square_frames(26), _square_frames(23)
    small = [F.interpolate(f.permute(2, 0, 1)[None], size=(32, 32), mode="area")[0].permute(1, 2, 0) for f in (f0, f1)]
    K64 = torch.as_tensor(fov_to_K(1.0, 64, 64), dtype=torch.float32)
    K32 = torch.as_tensor(fov_to_K(1.0, 32, 32), dtype=torch.float32)
    poses = torch.stack([_camera(), _camera()])
    frames = CapturedFrames(torch.stack(small), K32.expand(2, 3, 3).clone(), poses, torch.tensor([0.0, 1.0]),
                            native=(torch.stack([f0, f1]), K64.expand(2, 3, 3).clone()))
    out = frames.show(torch.zeros(1, 64, 64, 3), _camera()[None], K64[None], torch.tensor([0.5]))[0]
    # the square, solid, half way (its outer columns 0.74-0.86: the flows, found at 32², are half as fine)
    assert bool((out[28:36, 26:30, 0] > 0.9).all())
    # closer to the truth than the two ghosts (MSE 0.0012 against 0.0015; with flows found at 64², 0.4x)
    assert ((out - half) ** 2).mean() < 0.9 * ((0.5 * (f0 + f1) - half) ** 2).mean()
    torch.testing.assert_close(out[:20], f0[:20], atol=1e-6, rtol=0)  # nothing moved there: as captured at 64²
    # the model's own size still works
    at32 = frames.show(torch.zeros(1, 32, 32, 3), _camera()[None], K32[None], torch.tensor([0.5]))[0]
    torch.testing.assert_close(at32[:8], small[0][:8], atol=1e-6, rtol=0)
    # another size with the intrinsics rescaled to it: the captured frames resampled as ViewSet.resized does
    K48 = scale_K(K64, 0.75, 0.75)
    at48 = frames.show(torch.zeros(1, 48, 48, 3), _camera()[None], K48[None], torch.tensor([0.5]))[0]
    f48 = ViewSet.resample_images(torch.stack([f0, f1]), 48, 48)
    torch.testing.assert_close(at48[:14], f48[0, :14], atol=1e-6, rtol=0)
    assert bool((at48[21:27, 20:22, 0] > 0.9).all())  # the square half way: columns 17.25-24.75 at 48²
    # image_proc's convention (principal point times the scale, not its pixel centre) is the same camera
    naive = K64.clone()
    naive[:2] *= 0.75
    assert not torch.equal(naive, K48)
    torch.testing.assert_close(frames.show(torch.zeros(1, 48, 48, 3), _camera()[None], naive[None],
                                           torch.tensor([0.5]))[0], at48, rtol=0, atol=0)
    # ... but not with the intrinsics left as they were (another camera)
    other = torch.zeros(1, 48, 48, 3)
    assert torch.equal(frames.show(other, _camera()[None], K64[None], torch.tensor([0.5])), other)
    # without frames at another size, the model's frames serve every size, resampled
    model_only = CapturedFrames(frames.images, frames.Ks, poses, frames.times)
    up = model_only.show(torch.zeros(1, 64, 64, 3), _camera()[None], K64[None], torch.tensor([0.5]))[0]
    torch.testing.assert_close(up[:16], ViewSet.resample_images(frames.images[:1], 64, 64)[0, :16], atol=1e-6, rtol=0)


def test_a_reconstruction_serves_renders_at_the_views_own_resolution_from_them():
    from lrm4d_ros.data.generator import SceneConfig, generate
    from lrm4d_ros.model import LRM4D, LRM4DConfig
    from lrm4d_ros.reconstructor import Reconstructor

    cfg = SceneConfig(frames=3, cameras=2, height=48, width=48, rig_kinds=("workcell",), ground_prob=1.0,
                      backdrop_prob=0.0, num_primitives=(2, 3))
    views = generate(1_000_011, cfg)
    torch.manual_seed(0)
    rec = Reconstructor(LRM4D(LRM4DConfig.preset("tiny", image_size=24)), "cpu", refine_steps=0)  # model at 24²
    cam0 = torch.nonzero(views.camera_ids == 0).squeeze(1)
    cam0 = cam0[torch.argsort(views.stamps_ns[cam0])]
    first, last = int(cam0[0]), int(cam0[-1])
    inputs = views.select(torch.tensor([first, last]))
    r = rec.reconstruct(inputs)
    mid = (views.stamps_ns[first] + views.stamps_ns[last]) // 2
    out = r.render(views.camtoworlds[first:first + 1], views.Ks[first:first + 1], 48, 48, mid[None])
    same = (inputs.images[0] - inputs.images[1]).abs().amax(-1) <= 2 / 255
    same = -torch.nn.functional.max_pool2d(-same[None, None].float(), 5, 1, 2)[0, 0] > 0
    fade = 0.5 * (inputs.images[0] + inputs.images[1])
    assert same.float().mean() > 0.3
    torch.testing.assert_close(out.colors[0][same], fade[same].clamp(0, 1), atol=1e-5, rtol=0)  # 48², as captured


def test_flows_scale_per_axis_for_frames_that_are_not_square():
    """Native 64x128 frames, the model's 32x64: a square moving 6 px right comes out solid half way (3 px right),
    so the flows found at 32x64 were resized with x and y each by their own factor."""
    g = torch.Generator().manual_seed(2)
    bg = F.interpolate(torch.rand(1, 3, 6, 12, generator=g), size=(64, 128), mode="bicubic",
                       align_corners=False)[0].permute(1, 2, 0).clamp(0, 1) * 0.6

    def at(x: int) -> torch.Tensor:
        img = bg.clone()
        img[26:38, x:x + 12] = torch.tensor([1.0, 0.1, 0.1])
        return img

    f0, f1 = at(50), at(56)
    small = [F.interpolate(f.permute(2, 0, 1)[None], size=(32, 64), mode="area")[0].permute(1, 2, 0) for f in (f0, f1)]
    K = torch.tensor([[100.0, 0.0, 63.5], [0.0, 100.0, 31.5], [0.0, 0.0, 1.0]])
    Ks = scale_K(K[None], 0.5, 0.5)
    frames = CapturedFrames(torch.stack(small), Ks.expand(2, 3, 3).clone(), torch.stack([_camera(), _camera()]),
                            torch.tensor([0.0, 1.0]), native=(torch.stack([f0, f1]), K.expand(2, 3, 3).clone()))
    out = frames.show(torch.zeros(1, 64, 128, 3), _camera()[None], K[None], torch.tensor([0.5]))[0]
    assert bool((out[28:36, 55:63, 0] > 0.9).all())  # the square at columns 53-64, solid
    half = at(53)
    assert ((out - half) ** 2).mean() < 0.5 * ((0.5 * (f0 + f1) - half) ** 2).mean()  # 0.0003 against 0.0012

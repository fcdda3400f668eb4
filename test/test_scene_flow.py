"""Render-time geometry the reconstructor adds to the model's Gaussians: scene flow between a camera's frames
(velocities of its pixel Gaussians), and the colour refinement and the fill of nearly covered pixels that make
input views re-render as captured."""
import math

import numpy as np
import torch
import torch.nn.functional as F

from lrm4d_ros.cameras import fov_to_K
from lrm4d_ros.metrics import psnr
from lrm4d_ros.model import LRM4D, LRM4DConfig
from lrm4d_ros.pixel_gaussians import z_rays
from lrm4d_ros.environment import Environment
from lrm4d_ros.reconstruction import FILL_ALPHA, composite
from lrm4d_ros.reconstructor import REFINE_RANGE, Reconstructor
from lrm4d_ros.render import render
from lrm4d_ros.scene_flow import _displacement, scene_velocities
from lrm4d_ros.views import ViewSet

RES, F_PX, Z = 64, 64.0, 2.0  # image size, focal length (pixels), the wall's depth (canonical units)


def _texture(seed: int, size: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.interpolate(torch.rand(1, 3, size // 4, size // 4, generator=g), size=(size, size), mode="bicubic",
                         align_corners=False)[0].permute(1, 2, 0).clamp(0, 1)


def _camera():
    K = torch.tensor([[F_PX, 0.0, RES / 2], [0.0, F_PX, RES / 2], [0.0, 0.0, 1.0]])
    return K, torch.eye(4)


def _moving_patch_frames(shifts_px: list[int]) -> torch.Tensor:
    """Frames (T,RES,RES,3) of a static camera facing a textured wall at z = Z, with a 32-pixel square sticker
    on it shifted `shifts_px[k]` pixels to the right in frame k. (DIS smooths a small object's flow into its
    still surroundings: a 16-pixel sticker moving 3 pixels reads as 1.9.)"""
    wall, sticker = _texture(0, RES), _texture(1, 32)
    frames = []
    for s in shifts_px:
        img = wall.clone()
        img[16:48, 12 + s:44 + s] = sticker
        frames.append(img)
    return torch.stack(frames)


def test_scene_velocities_follow_a_moving_patch_and_leave_the_static_scene_still():
    shifts = [0, 3, 6]  # 3 pixels per frame at z = Z: 3 · Z / F_PX canonical units per frame
    images = _moving_patch_frames(shifts)
    K, c2w = _camera()
    Ks, c2ws = K.expand(3, 3, 3), c2w.expand(3, 4, 4)
    o, d = z_rays(Ks, c2ws, RES, RES)
    points = o + Z * d
    times = torch.tensor([-1.0, 0.0, 1.0])  # one normalised time unit per frame
    v = scene_velocities(images, points, times, torch.zeros(3, dtype=torch.long), Ks, c2ws)
    assert v.shape == (3, RES, RES, 3)
    truth = 3 * Z / F_PX
    # the sticker's interior (its middle frame, away from its edges) moves at the true velocity along x
    inner = v[1, 24:40, 24:36]
    assert abs(float(inner[..., 0].median()) - truth) < 0.1 * truth, float(inner[..., 0].median())
    assert float(inner[..., 1:].abs().max()) < 0.2 * truth
    # the wall, away from the sticker, keeps still in every frame (exactly: no depth noise enters it)
    still = torch.ones(RES, RES, dtype=torch.bool)
    still[8:56, 4:60] = False
    assert float((v[:, still].norm(dim=-1) == 0).float().mean()) > 0.98
    # one frame per camera: nothing to match, nothing moves
    alone = scene_velocities(images, points, times, torch.arange(3), Ks, c2ws)
    assert float(alone.abs().max()) == 0.0


def test_a_match_on_another_surface_or_occluded_is_no_motion():
    """A flow that lands on a surface at another depth (a depth edge), or that the backward flow does not bring
    back (an occlusion), is no match: those pixels are invalid; the rest move by the flow's 3D displacement."""
    K, c2w = _camera()
    o, d = z_rays(K[None], c2w[None], RES, RES)
    points_a = (o + Z * d)[0]
    depth_b = torch.full((RES, RES), Z)
    depth_b[:, 40:] = 0.5 * Z  # frame b sees a nearer surface on its right
    points_b = (o + depth_b[None, ..., None] * d)[0]
    flow_ab = np.zeros((RES, RES, 2), np.float32)
    flow_ab[..., 0] = 4.0  # everything moved 4 pixels right
    flow_ba = -flow_ab.copy()
    flow_ba[:8] = 0.0  # the top rows do not come back
    disp, valid = _displacement(flow_ab, flow_ba, points_a, points_b, K, c2w)
    assert not bool(valid[:8].any())  # occluded
    assert not bool(valid[8:, 36:60].any())  # matched onto the nearer surface
    body = valid[8:, :36]
    assert bool(body.all())
    torch.testing.assert_close(disp[8:, :36, 0], torch.full((RES - 8, 36), 4 * Z / F_PX), rtol=1e-4, atol=1e-5)


def test_colour_refinement_makes_the_inputs_re_render_as_captured():
    """An untrained model's surfels carry their pixels' colours but blur them (neighbouring splats overlap): the
    inputs re-render well below their own quality; three refinement passes bring them far closer, and the colours
    stay within REFINE_RANGE."""
    torch.manual_seed(0)
    V, res = 3, 24
    a = torch.arange(V, dtype=torch.float64) * 0.15
    c2w = torch.eye(4, dtype=torch.float64).repeat(V, 1, 1)
    c2w[:, 0, 3] = a  # three cameras side by side facing a wall 4 m ahead (+z)
    images = torch.stack([_texture(2 + v, res) for v in range(V)])
    views = ViewSet(images=images, Ks=fov_to_K(math.radians(50), res, res).expand(V, 3, 3).clone(), camtoworlds=c2w,
                    stamps_ns=torch.tensor([0, 50_000_000, 100_000_000]), camera_ids=torch.arange(V),
                    depths=torch.full((V, res, res), 4.0))
    model = LRM4D(LRM4DConfig.preset("tiny", image_size=res))
    torch.nn.init.zeros_(model.unpatchify.weight)
    scores = {}
    for steps in (0, 3):
        rec = Reconstructor(model, device="cpu", refine_steps=steps).reconstruct(views)
        out = rec.render(views.camtoworlds, views.Ks, res, res, views.stamps_ns)
        scores[steps] = float(psnr(out.colors.clamp(0, 1), images).mean())
        lo, hi = (0.0, 1.0) if steps == 0 else REFINE_RANGE
        assert lo <= float(rec.gaussians.colors.min()) and float(rec.gaussians.colors.max()) <= hi
    assert scores[3] > scores[0] + 3.0, scores


def test_fill_shows_the_gaussians_own_colour_where_they_nearly_cover_a_pixel():
    """One round splat (opacity 0.95) over a white environment: with the fill its core (alpha >= FILL_ALPHA[1])
    shows its own colour exactly, its fringe (alpha <= FILL_ALPHA[0]) is composited over the environment as
    without it, and without the fill the environment shows through the core by 1 - alpha."""
    res = 32
    K = fov_to_K(math.radians(40), res, res)[None].float()
    c2w = torch.eye(4)[None]
    color = torch.tensor([0.2, 0.4, 0.1])
    out = render(torch.tensor([[0.0, 0.0, 4.0]]), (0.3 ** 2 * torch.eye(3))[None], torch.tensor([0.95]),
                 color[None], c2w, K, res, res)
    env = Environment.constant(torch.ones(3))
    plain, filled = (composite(out, env, c2w, K, res, res, fill=f).colors[0] for f in (False, True))
    a = out.alphas[0]
    core, fringe = a[..., 0] >= FILL_ALPHA[1], a[..., 0] <= FILL_ALPHA[0]
    assert int(core.sum()) >= 4 and int(fringe.sum()) >= 100
    torch.testing.assert_close(filled[core], color.expand(int(core.sum()), 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(plain, a * color + (1 - a), atol=1e-5, rtol=0)
    torch.testing.assert_close(filled[fringe], plain[fringe], atol=1e-6, rtol=0)
    assert float((plain[core] - color).abs().max()) > 0.03  # what the fill removes: 5 % of white through the core

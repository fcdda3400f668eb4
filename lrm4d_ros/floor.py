"""The ground plane under a robot scene: its height, and a texture of what the input views saw on it.

Novel views of a workcell look at floor that no input pixel Gaussian covers: behind the robot from the inputs'
side, at the camera's own feet, beyond the depth camera's range. Looked up by ray direction alone (the
environment map) such floor takes whatever colour that direction showed from the rig's centre, often the sky.
A plane intersected by each target ray puts it where it lies instead. The plane is horizontal in the canonical
frame, whose z is world up (REP-103's world z, or the up the cameras or the depth's `floor_normal` show where the
world's z is not: cameras.SceneNormalization), at the height floor_fit.py finds
- from measured depth (`height_from_depth`): the lowest well-populated, wide height below the cameras;
- from colour alone (`floor_from_photo`): the height at which the views' textured pixels match their partners'
  best, by votes; its pixels then get the floor's depth, as a depth camera would measure it.
Its texture is a polar grid about the scene centre, radius compressed as r / (r + R0) so the floor to the
horizon fits. Every input pixel whose ray meets the plane where the view measured it (or measured nothing:
floor beyond range; not a depth camera's dropout beside an object, which shows the object) adds its colour there;
a pixel that measured something before the plane counts that ray as hidden, and a cell's sureness is the share of
its rays that saw floor (a wall's foot hides the floor behind it: that is the environment map's), or whole where
floor was seen farther out at its azimuth (what hid it stands on the floor); a target ray takes the floor with a
weight that rises steeply with it (SURE_POWER: what hid the floor from the inputs need not hide it from the
target). Empty bins are filled from coarser levels (push-pull). Read from the views
(`with_views`), a point's colour comes at their resolution from those that show it; floor none shows takes the
grid's blur, or, where the floor repeats (tiles, checkers, planks: `floor_period`), the colour of the place it
repeats, for target pixels narrower than half a period there (fading out as they widen). No learned parameters;
the reconstructor (`predict`) decides what the floor changes about the pixel Gaussians.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor

from . import plane_kernels
from .environment import push_pull
from .floor_fit import plane_depths, plane_hits
from .pixel_gaussians import z_rays

# radial × azimuth bins. 16 rig validation scenes, RGB-D novel_view / novel_view_time (with the fill and the wider
# colour range): 64×128 25.81 / 25.00, 64×256 25.38 / 24.60, 128×128 26.14 / 25.27, 128×32 26.25 / 25.40,
# 128×64 26.29 / 25.41, 256×128 26.30 / 25.41, 512×128 26.29 / 25.39: the far floor needs radial bins, not
# azimuthal ones (a cell seen from few pixels is noise). RGB: 20.07 / 19.99 on every grid. R0 1 / 4 at 128×64:
# 26.23 / 26.30. These scenes' floors all reach the horizon; on the MuJoCo bags' finite floor under a white sky the
# finer grid left the farthest cells unobserved, push-pull filled them with the floor's colour, and novel views
# fell 17.79 -> 13.36: hence REACH.
SIZE = (128, 64)
# cells (square, in bins) around an observed one where the floor may be claimed: 16 rig validation scenes RGB-D
# novel_view 3: 25.99, 7: 26.12, 15: 26.24, none: 26.29; MuJoCo bags 17.96 / 17.93 / 17.38 / 13.36.
REACH = 7
R0 = 2.0  # canonical units: half the radial bins lie within this distance of the scene centre (cameras at ~2)
ON_PLANE = 0.05  # relative z-depth difference within which a measured pixel lies on the plane
UNMEASURED_WEIGHT = 0.25  # a pixel without a measurement adds this much (it may be an object edge's dropout)
VIEW_SHARPNESS, VIEW_ANGLE = 1.0, 1.0  # PlaneViews.sample's weights
SHOWS_POWER = 8.0  # a view that surely shows a point outweighs one that may by (1/UNMEASURED_WEIGHT)^this
MODEL_SLACK = 0.1  # an unmeasured pixel's Gaussian this much (relative z) before the plane hides the floor
# A target ray meets the floor with the weight sure^SURE_POWER (0 where sure <= SURE_MIN: beyond the floor's REACH),
# sure being the share of the input rays near that point that saw floor there rather than something before it.
# A ray the inputs saw blocked there (by the robot, an object) is not blocked for a target that looks from
# elsewhere: what stands before the floor there the target's own Gaussians draw, and the environment map, which
# the rest of the weight takes, is a colour by direction only (on the MuJoCo jaco bags the white beyond the floor's
# edge, drawn as white patches on the floor behind the arm: 0.6 % of the novel views' pixels, 30 % of their error).
# 16 rig validation scenes RGB-D novel_view / novel_view_time: power 1 26.77 / 25.87, 0.5 26.84 / 25.94, 0.25
# 26.88 / 25.97, 0 (the floor wherever it reaches) 26.81 / 25.90; RGB 20.18 -> 20.19 at 0 (ablation block 13).
SURE_POWER, SURE_MIN = 0.25, 1e-3
LOOKUP_CHUNK = 65536  # plane points sampled from the views at once
FILL_MARGIN = 2  # pixels: an unmeasured pixel this near one measured before the floor may be that object's
# a floor's period (tiles, checkers, planks): the seen floor sampled on a PERIOD_SAMPLES² grid over ±PERIOD_EXTENT
# canonical units about the scene centre, its masked normalised autocorrelation searched for translations that map
# it onto itself (NCC ≥ PERIOD_NCC, overlapping PERIOD_OVERLAP of the seen samples, at least PERIOD_MIN_SHIFT
# samples long). 16 rig validation scenes, RGB-D novel_view: 26.63 without; cut off at footprints of 0.25 / 0.5 /
# 1 period 26.77 / 26.79 / 26.80, but on scene_1002002's large checkers 0.5 lost 0.6 dB from RGB (pixels of half a
# period point-sampling it); faded out by 0.25 / 0.5 period 26.73 / 26.77, and scene_1002002 gains (20.28 -> 20.62
# RGB-D, 19.60 -> 19.73 RGB). NCC 0.6 26.79, extent 5 26.72, 256² samples 26.79 (4x the time: ~20 ms for 6 views).
PERIOD_SAMPLES, PERIOD_EXTENT = 128, 3.0
PERIOD_NCC, PERIOD_OVERLAP, PERIOD_MIN_SHIFT = 0.8, 0.2, 4
PERIOD_FOOTPRINT = 0.5  # the period's share of a pixel fades to 0 as its footprint grows to this share of it
PERIOD_TILE = 32  # texture bins across one period, along each translation


def _beside_before(before: Tensor) -> Tensor:
    """(V,H,W) bool: pixels within FILL_MARGIN of one measured before the plane (before (V,H,W) bool)."""
    k = 2 * FILL_MARGIN + 1
    return F.max_pool2d(before[:, None].float(), k, stride=1, padding=FILL_MARGIN)[:, 0] > 0


def _polar(xy: Tensor) -> Tensor:
    """Canonical xy (...,2) about the scene centre -> grid_sample coordinates (...,2): azimuth → x, r/(r+R0) → y."""
    r = xy.norm(dim=-1)
    az = torch.atan2(xy[..., 1], xy[..., 0]) / math.pi
    return torch.stack([az, 2 * r / (r + R0) - 1], -1)


def _xcorr(a: Tensor, b: Tensor) -> Tensor:
    """Σₓ a(x)·b(x+τ) for every shift τ of two (n,n) grids, zero outside: (2n,2n), τ = 0 at [0,0] (wrapping)."""
    n = a.shape[-1]
    fa, fb = torch.fft.rfft2(a, s=(2 * n, 2 * n)), torch.fft.rfft2(b, s=(2 * n, 2 * n))
    return torch.fft.irfft2(fa.conj() * fb, s=(2 * n, 2 * n))


def floor_period(views: PlaneViews, height: float) -> tuple[Tensor, Tensor] | None:
    """The period of the floor the views show: two translations (2,2) float64 (rows; canonical xy) that map it
    onto itself, and the texture of one period (3, PERIOD_TILE, PERIOD_TILE) over lattice coordinates (every
    seen repeat averaged); or None. Tiles, checkers and planks repeat, so floor no view saw can take the colour
    of where it repeats. The translations are the shortest two independent peaks of the seen floor's masked
    normalised cross-correlation with itself (Padfield's masked NCC, by FFT) on a grid about the scene centre;
    a texture without such peaks (noise, a plain floor) has none."""
    n, e = PERIOD_SAMPLES, PERIOD_EXTENT
    step = 2 * e / n
    xs = (torch.arange(n, dtype=torch.float64) + 0.5) * step - e
    gy, gx = torch.meshgrid(xs, xs, indexing="ij")
    pts = torch.stack([gx, gy, torch.full_like(gx, height)], -1).reshape(-1, 3)
    down = torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64).expand(pts.shape[0], 3)
    col, shows = views.sample(pts, down)
    m = (shows.double() > 0.5).reshape(n, n).double()
    if float(m.sum()) < 0.05 * n * n:
        return None
    f = (col.double() @ torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)).reshape(n, n)
    f = (f - float((f * m).sum() / m.sum())) * m
    overlap = _xcorr(m, m)
    s1, s2 = _xcorr(f, m), _xcorr(m, f)
    q1, q2 = _xcorr(f * f, m), _xcorr(m, f * f)
    o = overlap.clamp_min(1.0)
    num = _xcorr(f, f) - s1 * s2 / o
    den = ((q1 - s1 * s1 / o) * (q2 - s2 * s2 / o)).clamp_min(1e-12).sqrt()
    ncc = num / den
    shift = torch.fft.fftfreq(2 * n, 1.0 / (2 * n), dtype=torch.float64)  # 0, 1, …, −1 in samples
    ty, tx = torch.meshgrid(shift, shift, indexing="ij")
    length = (tx.square() + ty.square()).sqrt()
    ok = (overlap > PERIOD_OVERLAP * float(m.sum())) & (length >= PERIOD_MIN_SHIFT) & (ncc >= PERIOD_NCC)
    # local maxima of the NCC (wrapping: τ and −τ are both there)
    pooled = F.max_pool2d(ncc[None, None], 3, stride=1, padding=1)[0, 0]
    ok &= ncc >= pooled
    if not bool(ok.any()):
        return None
    # each peak refined to a fraction of a sample: a parabola through it and its neighbours along x and along y
    iy, ix = torch.nonzero(ok, as_tuple=True)
    N2 = 2 * n

    def offset(c: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
        curv = lo - 2 * c + hi
        return torch.where(curv < -1e-9, 0.5 * (lo - hi) / curv.clamp(max=-1e-9), torch.zeros_like(c))

    c0 = ncc[iy, ix]
    dx = offset(c0, ncc[iy, (ix - 1) % N2], ncc[iy, (ix + 1) % N2]).clamp(-0.5, 0.5)
    dy = offset(c0, ncc[(iy - 1) % N2, ix], ncc[(iy + 1) % N2, ix]).clamp(-0.5, 0.5)
    cand = torch.stack([tx[ok] + dx, ty[ok] + dy], -1) * step
    cand = cand[length[ok].argsort()]
    first = cand[0]
    cross = (first[0] * cand[:, 1] - first[1] * cand[:, 0]).abs() / (first.norm() * cand.norm(dim=1))
    others = cand[cross > 0.5]
    if not len(others):
        return None
    L = torch.stack([first, others[0]])
    # one period's texture: every seen sample added at its place within the period (lattice coordinates mod 1)
    ab = torch.linalg.solve(L.T, pts[:, :2].T).T % 1.0
    cell = (ab * PERIOD_TILE).long().clamp(0, PERIOD_TILE - 1)
    w = m.reshape(-1)
    acc = torch.zeros(PERIOD_TILE * PERIOD_TILE, 4, dtype=torch.float64)
    acc.index_add_(0, cell[:, 1] * PERIOD_TILE + cell[:, 0], torch.cat([col.double() * w[:, None], w[:, None]], 1))
    tile = push_pull(acc.T.reshape(4, PERIOD_TILE, PERIOD_TILE), [(2, 2)] * int(math.log2(PERIOD_TILE)))
    return L, tile.clamp(0, 1)


@dataclass
class PlaneViews:
    """The input views a plane's points take their colour from, at the views' own resolution: images (V,H,W,3)
    in [0,1], Ks (V,3,3), camtoworlds (V,4,4) canonical, `shows` (V,H,W) in [0,1]: how surely each pixel shows the
    plane where its ray meets it (0: something stands before it, or its ray never meets it), and the plane's unit
    `normal` (3,)."""

    images: Tensor
    Ks: Tensor
    camtoworlds: Tensor
    shows: Tensor
    normal: Tensor

    def __post_init__(self):
        V, H, W, _ = self.images.shape
        # the views' colours and `shows` sampled together; world -> pixel projections (u·w, v·w, w) from [x, 1]
        self._stack = torch.cat([self.images.permute(0, 3, 1, 2), self.shows[:, None]], 1)
        w2c = torch.linalg.inv(self.camtoworlds.double())[:, :3]
        K = self.Ks.double().clone()
        K[:, 0] /= W / 2  # to grid_sample's [-1, 1] (pixel centres at (u + 0.5) / W · 2 − 1)
        K[:, 1] /= H / 2
        K[:, 0, 2] += 1 / W - 1
        K[:, 1, 2] += 1 / H - 1
        self._project = (K @ w2c).transpose(1, 2).to(self.images.dtype)  # (V,4,3)
        self._centres = self.camtoworlds[:, :3, 3].to(self.images.dtype)
        self._focal = (self.Ks[:, 0, 0] * self.Ks[:, 1, 1]).to(self.images.dtype)
        self._channels_last: Tensor | None = None  # the stack as plane_kernels reads it, made on first use

    def over(self, points: Tensor, dirs: Tensor, texture: Tensor) -> Tensor:
        """Colours (N,3) of the plane's points (N,3) seen along unit rays dirs (N,3): read from the views as far as
        they show them (`sample`), the plane's own `texture` colours (N,3) for the rest."""
        sharp, m = self.sample(points, dirs)
        m = m.to(texture)[:, None]
        return m * sharp.to(texture) + (1 - m) * texture

    def sample(self, points: Tensor, dirs: Tensor) -> tuple[Tensor, Tensor]:
        """Colours (N,3) of the plane's points (N,3) seen along unit target rays dirs (N,3), and how surely (N,) any
        view showed them. Views that show a point are blended, the sharpest most: weights fall with the area a
        view's pixel covers on the plane there (relative to the sharpest view's, to the power VIEW_SHARPNESS), with
        the angle between the view's ray and the target's (VIEW_ANGLE), and with how surely the view shows it.
        Points go LOOKUP_CHUNK at a time (each is V samples)."""
        if points.shape[0] <= LOOKUP_CHUNK:
            return self._sample(points, dirs)
        parts = [self._sample(points[i:i + LOOKUP_CHUNK], dirs[i:i + LOOKUP_CHUNK])
                 for i in range(0, points.shape[0], LOOKUP_CHUNK)]
        return torch.cat([c for c, _ in parts]), torch.cat([m for _, m in parts])

    def _sample(self, points: Tensor, dirs: Tensor) -> tuple[Tensor, Tensor]:
        if points.device.type == "cpu":  # compiled (plane_kernels.py), else the torch version below
            if self._channels_last is None:
                self._channels_last = self._stack.permute(0, 2, 3, 1).to(torch.float32).contiguous()
            out = plane_kernels.sample(self._channels_last, self._project, self._centres, self._focal, self.normal,
                                       points, dirs, (SHOWS_POWER, VIEW_SHARPNESS, VIEW_ANGLE))
            if out is not None:
                return out
        return self._sample_torch(points, dirs)

    def _sample_torch(self, points: Tensor, dirs: Tensor) -> tuple[Tensor, Tensor]:
        """`_sample` in torch: any device, and the reference plane_kernels is tested against."""
        dt = self._stack.dtype
        points, dirs = points.to(dt), dirs.to(dt)
        V, N = self._centres.shape[0], points.shape[0]
        # every (view, point) quantity from single (N,3) × (3,·) products: small batched ones are slow on the CPU
        uvw = (points @ self._project[:, :3].permute(1, 0, 2).reshape(3, V * 3)).reshape(N, V, 3).transpose(0, 1)
        uvw = uvw + self._project[:, 3][:, None]
        z = uvw[..., 2]
        grid = uvw[..., :2] / z.clamp_min(1e-9)[..., None]
        inside = (z > 1e-6) & (grid.abs() <= 1).all(-1)
        seen = F.grid_sample(self._stack, grid[:, :, None], mode="bilinear", padding_mode="border",
                             align_corners=False)[..., 0]  # (V,4,N)
        shows = seen[:, 3].clamp(0, 1) * inside
        c = self._centres
        dist2 = ((points.square().sum(1)[None] - 2 * (c @ points.T)) + c.square().sum(1)[:, None]).clamp_min(1e-18)
        inv = dist2.rsqrt()
        n = self.normal.to(dt)
        # a view pixel's footprint on the plane: dist² / (f² |cos incidence|)
        incidence = ((points @ n)[None] - (c @ n)[:, None]).abs() * inv
        log_area = dist2.log() - (self._focal[:, None] * incidence.clamp_min(1e-3)).log()
        cos = ((points * dirs).sum(1)[None] - c @ dirs.T) * inv
        # weights in log space: a ray that only grazing, far-off views show must not underflow to black
        log_w = SHOWS_POWER * shows.clamp_min(1e-30).log() - VIEW_SHARPNESS * log_area + (cos - 1) / VIEW_ANGLE
        log_w = torch.where(shows > 0, log_w, torch.full_like(log_w, -math.inf))
        w = torch.softmax(log_w, 0).nan_to_num(0.0)  # rays no view shows: all -inf
        colors = torch.einsum("vn,vcn->nc", w, seen[:, :3])
        return colors, shows.amax(0)

    def to(self, device) -> "PlaneViews":
        return PlaneViews(*(x.to(device) for x in (self.images, self.Ks, self.camtoworlds, self.shows, self.normal)))


@dataclass
class Floor:
    """The plane z = `height` (canonical) and its texture `colors` (4, radial, azimuth) over `_polar` coordinates:
    colour, and the share of the views' rays into the cell that saw the floor there (not something before it).
    With `views`, a point's colour is read from the input views that show it, at their resolution; the texture
    gives the rest (and always the share)."""

    height: float
    colors: Tensor
    views: PlaneViews | None = None
    period: Tensor | None = None  # (2,2) float64: rows, two translations (canonical xy) the texture repeats by
    tile: Tensor | None = None  # (3, PERIOD_TILE, PERIOD_TILE): one period's texture (floor_period)

    @classmethod
    def build(cls, images: Tensor, origins: Tensor, dirs: Tensor, axes: Tensor, depths: Tensor | None,
              height: float, size: tuple[int, int] = SIZE) -> "Floor":
        """Texture the plane z = height from input views: images (V,H,W,3) in [0,1], origins/dirs (V,H,W,3) unit
        rays, axes (V,3) optical axes, depths (V,H,W) measured z-depth (0 = none; None: nothing measured)."""
        t, hit = plane_hits(origins.double(), dirs.double(), height)
        hit = hit.to(images.dtype)
        if depths is not None:
            cos = (dirs.double() * axes.double()[:, None, None, :]).sum(-1)
            z_plane = t * cos
            measured = depths > 0
            on = measured & ((depths - z_plane).abs() < ON_PLANE * z_plane)
            before = measured & (depths < (1 - ON_PLANE) * z_plane)
            seen = hit * torch.where(measured, on.to(hit), torch.full_like(hit, UNMEASURED_WEIGHT))
            hidden = hit * before.to(hit)
            # an unmeasured pixel beside one measured before the plane is more often that object's edge (a depth
            # camera's dropout) than floor: it counts as seeing the floor, but its colour is not the floor's
            # (`with_views` leaves such pixels out alike): floor an arm hid from every input took its grey
            edge = ~measured & _beside_before(before)
            painted = torch.where(edge, torch.zeros_like(seen), seen)
        else:
            seen, hidden = hit * UNMEASURED_WEIGHT, torch.zeros_like(hit)
            painted = seen
        xy = (origins.double() + t[..., None] * dirs.double())[..., :2]
        g = _polar(xy)
        h, w = size
        x = ((g[..., 0] + 1) / 2 * w).long().clamp(0, w - 1)
        y = ((g[..., 1] + 1) / 2 * h).long().clamp(0, h - 1)
        acc = torch.zeros(h * w, 6, dtype=images.dtype, device=images.device)
        acc.index_add_(0, (y * w + x).reshape(-1), torch.cat([images.reshape(-1, 3) * painted.reshape(-1, 1),
                                                               painted.reshape(-1, 1), seen.reshape(-1, 1),
                                                               hidden.reshape(-1, 1)], 1))
        acc = acc.reshape(h, w, 6).permute(2, 0, 1)
        pools = [(2, 2)] * int(math.log2(min(h, w)))  # down to one row of cells: the top level is their sum
        colors = push_pull(acc[:4], pools).clamp(0, 1)
        seen, hidden = acc[4], acc[5]
        # how surely a cell is floor seen rather than floor hidden behind something (a wall, the robot)
        p = push_pull(torch.stack([seen, seen, seen, seen + hidden]), pools)[:1].clamp(0, 1)
        # a cell no view's ray came near is no floor seen: where the floor ends (a platform, a MuJoCo plane under
        # the sky) a target's rays past its edge take the environment, not the floor's average colour
        r = REACH // 2
        near = F.pad(((seen + hidden) > 0)[None, None].float(), (r, r, 0, 0), mode="circular")  # azimuth wraps
        near = F.max_pool2d(F.pad(near, (0, 0, r, r)), REACH, stride=1)[0] > 0
        p = torch.where(near, p, torch.zeros_like(p))
        # floor seen farther out at the same azimuth runs on under what hid it nearer in (the robot, an object on
        # it: the target's own Gaussians draw those); only beyond the farthest floor seen at an azimuth (behind a
        # wall, past a platform's edge) does the environment map take over. The MuJoCo jaco bags had drawn the sky's
        # white on the floor the arm hid from every input (ablation block 53)
        rows = torch.arange(h, device=p.device)[:, None]
        floor_seen = (seen > 0) & (p[0] > 0.5)
        outer = torch.where(floor_seen, rows, torch.full_like(rows, -1)).amax(0)  # (w,) farthest such bin
        p = torch.where(rows < outer, torch.ones_like(p), p)
        return cls(height, torch.cat([colors, p]))

    def with_views(self, images: Tensor, Ks: Tensor, camtoworlds: Tensor, depths: Tensor | None,
                   pixel_depths: Tensor, sensed: bool) -> "Floor":
        """This floor, its colours read from the input views: images (V,H,W,3) in [0,1], Ks (V,3,3), camtoworlds
        (V,4,4) canonical, depths (V,H,W) z-depth measured (sensed) or found from colour (0 = none; None: nothing),
        pixel_depths (V,H,W) the pixel Gaussians' z-depths. A pixel whose ray meets the plane shows the floor
        (`PlaneViews.shows`): surely (1) where its depth lies on the plane; with UNMEASURED_WEIGHT where nothing was
        measured and nothing stands before the plane within FILL_MARGIN pixels (a depth camera drops out on an
        object's edges and dark or grazing faces: such a pixel is the object's more often than not); surely again
        where a depth camera's plane depth lies beyond the farthest it measured in that view (floor out of range)."""
        V, H, W, _ = images.shape
        origins, dirs = z_rays(Ks, camtoworlds.double(), H, W)
        axes = camtoworlds[:, :3, 2].double()
        z_plane, hit = plane_depths(origins, F.normalize(dirs, dim=-1), axes, self.height)
        measured = depths > 0 if depths is not None else torch.zeros_like(hit)
        d = depths.double() if depths is not None else torch.zeros_like(z_plane)
        on = measured & ((d - z_plane).abs() < ON_PLANE * z_plane)
        before = torch.where(measured, d < (1 - ON_PLANE) * z_plane,
                             pixel_depths.double() < (1 - MODEL_SLACK) * z_plane)
        open_ = ~measured & ~_beside_before(before)
        shows = torch.where(on, 1.0, torch.where(open_, UNMEASURED_WEIGHT, 0.0))
        if sensed and bool(measured.any()):
            reach = torch.where(measured, d, torch.zeros_like(d)).flatten(1).amax(1)[:, None, None]
            shows = torch.where(open_ & (z_plane > reach), 1.0, shows)
        shows = (shows * hit).to(images.dtype)
        up = torch.tensor([0.0, 0.0, 1.0], dtype=images.dtype, device=images.device)
        views = PlaneViews(images.detach(), Ks.detach(), camtoworlds.detach(), shows, up)
        found = floor_period(views, self.height)
        return replace(self, views=views, period=None if found is None else found[0],
                       tile=None if found is None else found[1].to(images.dtype))

    def lookup(self, origins: Tensor, dirs: Tensor, spread: Tensor | float = 0.0) -> tuple[Tensor, Tensor]:
        """Colours (...,3) where rays (origins, unit dirs (...,3)) meet the floor, and each ray's weight (...) in
        [0,1]: 0 where it does not meet the floor or beyond its reach, else how surely the views saw floor there
        (to the power SURE_POWER). spread: the rays'
        pixel width in radians (float or (...)): with a `period`, floor no view shows is read where the texture
        repeats it, less as the pixel's footprint on the floor nears PERIOD_FOOTPRINT of the period."""
        t, hit = plane_hits(origins.double(), dirs.double(), self.height)
        xy = (origins.double() + t.clamp_min(0)[..., None] * dirs.double())[..., :2]
        g = _polar(xy).to(self.colors.dtype)
        out = F.grid_sample(self.colors[None], g.reshape(1, -1, 1, 2), mode="bilinear", padding_mode="border",
                            align_corners=False)
        out = out[0, :, :, 0].T.reshape(*dirs.shape[:-1], 4)
        sure = out[..., 3]
        sure = torch.where(sure > SURE_MIN, sure.clamp_min(SURE_MIN) ** SURE_POWER, torch.zeros_like(sure))
        colors, p = out[..., :3], sure * hit.to(out)
        if self.views is not None:
            sel = p > 0
            if bool(sel.any()):
                points = (origins.double() + t.clamp_min(0)[..., None] * dirs.double())[sel]
                colors = colors.clone()
                texture = colors[sel]
                if self.period is not None:
                    foot = (t * torch.as_tensor(spread, dtype=t.dtype, device=t.device) / dirs[..., 2].double().abs()
                            .clamp_min(1e-6))[sel]
                    texture = self._repeat(points, texture, foot)
                colors[sel] = self.views.over(points, dirs[sel], texture)
        return colors, p

    def _repeat(self, points: Tensor, texture: Tensor, foot: Tensor) -> Tensor:
        """`texture` (N,3) blended with the period's (`tile`) at the floor points (N,3): all of it for a pixel of
        no width (foot (N,), its footprint on the floor), none from PERIOD_FOOTPRINT of the period up (a wider
        pixel averages the period: the texture's blur is the better guess)."""
        L = self.period.to(points)
        share = (1 - foot / (PERIOD_FOOTPRINT * float(L.norm(dim=1).min()))).clamp(0, 1)
        near = share > 0
        if not bool(near.any()):
            return texture
        ab = torch.linalg.solve(L.T, points[near, :2].T).T % 1.0  # lattice coordinates within the period
        T = self.tile.shape[-1]
        wrapped = F.pad(self.tile[None], (1, 1, 1, 1), mode="circular")  # bilinear across the period's edges
        g = ((ab * T + 1) / (T + 2) * 2 - 1).to(self.tile)
        c = F.grid_sample(wrapped, g.reshape(1, -1, 1, 2), mode="bilinear", align_corners=False)[0, :, :, 0].T
        out = texture.clone()
        w = share[near].to(texture)[:, None]
        out[near] = w * c.to(texture) + (1 - w) * texture[near]
        return out

    def beyond(self, origins: Tensor, dirs: Tensor, axes: Tensor, depths: Tensor) -> Tensor:
        """(V,H,W) bool: pixels whose z-depth (V,H,W) lies past the floor along their ray (by more than 2·ON_PLANE)."""
        z_plane, hit = plane_depths(origins, dirs, axes, self.height)
        return hit & (depths > (1 + 2 * ON_PLANE) * z_plane)

    def hit(self, origins: Tensor, dirs: Tensor) -> tuple[Tensor, Tensor]:
        """Ray parameter t (...) where rays (origins, unit dirs (...,3)) meet the floor (inf where they do not)."""
        t, hit = plane_hits(origins.double(), dirs.double(), self.height)
        return torch.where(hit, t, torch.full_like(t, math.inf)), hit

    def to(self, device) -> "Floor":
        views = None if self.views is None else self.views.to(device)
        return Floor(self.height, self.colors.to(device), views, *(None if x is None else x.to(device)
                                                                   for x in (self.period, self.tile)))

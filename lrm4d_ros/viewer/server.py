"""The 4D viewer: a viser server showing Gaussians as splats, sliced at the time on a slider.

Panel: the window and stamp shown, a time slider (seconds since the first window's start), play/pause and
speed, and toggles for the Gaussians and the camera frustums. Scene: the splats, each input camera as a frustum
holding the image it took nearest the time shown (at that image's pose), and the world axes.

Slicing and sending happen on the viewer's own thread: `show` and `update` only hand over what to show and
return at once, so the ROS node calls `update` from its model thread without waiting for the browser.
"""
from __future__ import annotations

import logging
import math
import socket
import sys
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass

import numpy as np
import torch

from .sources import ViewerError, ViewerWindow, WindowRef, nearest_window

PLAY_FPS = 10.0           # redraws per second while playing (fewer when slicing and sending take longer)
WINDOWS_CACHED = 4        # loaded windows kept (a bag's windows are reconstructed when loaded)
FRUSTUM_IMAGE_SIDE = 192  # pixels of the longer side of a frustum's image
SPLATS = "/gaussians"
RETRY_S = 1.0             # pause after an error before showing (and so loading) again


@dataclass(frozen=True)
class Draw:
    """One redraw: the stamp shown, Gaussians sent, seconds spent slicing and handing them to viser, and when it
    finished (time.monotonic)."""

    stamp_ns: int
    gaussians: int
    slice_s: float
    send_s: float
    done: float


def slider_step(span_s: float) -> float:
    """A power of ten giving the time slider at least ~1000 positions over `span_s` seconds (at most 1 ms)."""
    return min(1e-3, 10.0 ** math.floor(math.log10(max(span_s, 1e-6) / 1000)))


class Viewer:
    """A viser server on host:port (port 0: any free port). Raises ViewerError if the port is taken."""

    def __init__(self, port: int = 8080, host: str = "127.0.0.1", label: str = "lrm4d"):
        import viser

        # Browsers open and drop speculative connections; websockets logs each as an error with a traceback.
        logging.getLogger("websockets.server").setLevel(logging.CRITICAL)
        if not 0 <= port <= 65535:
            raise ViewerError(f"port must be in 0..65535, got {port}")
        if port:  # before viser, which would announce the next free port it moves on to
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((host, port))
                except OSError:
                    raise ViewerError(f"port {port} is in use (another viewer or program listens there); choose "
                                      "another (--port 0: any free one)") from None
        self.server = viser.ViserServer(host=host, port=port, label=label, verbose=False)
        if port and self.server.get_port() != port:  # viser moves on to the next free port by itself
            self.server.stop()
            raise ViewerError(f"port {port} is in use (another viewer or program listens there); choose another "
                              "(--port 0: any free one)")
        self.host, self.port = host, self.server.get_port()
        self._wake, self._stop = threading.Event(), threading.Event()
        gui = self.server.gui
        self._info = gui.add_markdown("waiting for a reconstruction ...")
        self._time = gui.add_slider("time (s)", min=0.0, max=1.0, step=1e-3, initial_value=0.0, disabled=True)
        self._play = gui.add_checkbox("play", False)
        self._speed = gui.add_slider("speed", min=0.1, max=4.0, step=0.1, initial_value=1.0)
        self._show_gaussians = gui.add_checkbox("Gaussians", True)
        self._show_cameras = gui.add_checkbox("cameras", True)
        for handle in (self._play, self._show_gaussians, self._show_cameras):
            handle.on_update(lambda _: self._wake.set())
        # the time slider wakes the loop only when a user moves it: the loop's own updates while playing also
        # fire this callback, and had woken it at once, every frame (a redraw per millisecond, not PLAY_FPS)
        self._time_set = math.nan  # the value the loop last gave the slider
        self._time.on_update(lambda _: None if abs(self._time.value - self._time_set) <= 0.5 * self._time.step
                             else self._wake.set())
        self.server.scene.world_axes.visible = True

        self.draws: deque[Draw] = deque(maxlen=256)
        self._lock = threading.Lock()  # guards _pending
        self._pending = None  # (windows, start_s, keep_fraction) handed over, not yet shown
        # Below: the viewer thread's own state.
        self._windows: list[WindowRef] = []
        self._serial = 0
        self._origin_ns, self._span_s = 0, 0.0
        self._cache: OrderedDict[int, ViewerWindow] = OrderedDict()
        self._drawn = None
        self._splats = None
        self._frustums: dict[str, tuple] = {}
        self._framed = False
        self._thread = threading.Thread(target=self._run, name="lrm4d-viewer", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """Where a browser opens the viewer: for a server on every interface (0.0.0.0), this machine's name, which
        other machines can reach (127.0.0.1 only works on this one)."""
        if self.host in ("0.0.0.0", ""):
            import socket

            return f"http://{socket.gethostname()}:{self.port} (or http://127.0.0.1:{self.port} on this machine)"
        return f"http://{self.host}:{self.port}"

    # -- handing over (any thread, returns at once) -----------------------------------------------------
    def show(self, windows: list[WindowRef], start_s: float | None = None) -> None:
        """Show these windows on one timeline; the slider starts at `start_s` seconds after the first window's
        start (default: the middle of the first window)."""
        if not windows:
            raise ViewerError("nothing to show: no windows")
        self._hand_over(list(windows), start_s, keep_fraction=False)

    def update(self, reconstruction, views=None) -> None:
        """Show the newest `Reconstruction` (live), with the views it saw for the camera frustums. The slider
        keeps its place as a fraction of the window (it starts at the window's end, the newest stamp)."""
        rec = reconstruction
        ref = WindowRef("newest reconstruction", rec.window.start_ns, rec.window.end_ns,
                        lambda: ViewerWindow.from_reconstruction(rec, views))
        self._hand_over([ref], None, keep_fraction=True)

    def _hand_over(self, windows, start_s, keep_fraction) -> None:
        with self._lock:
            self._pending = (windows, start_s, keep_fraction)
        self._wake.set()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30.0)
        self.server.stop()

    # -- the viewer thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        last = time.monotonic()
        error, repeats = None, 0  # the last error and how often it recurred in a row since it was printed
        while not self._stop.is_set():
            playing = self._play.value and bool(self._windows)
            self._wake.wait(1.0 / PLAY_FPS if playing else 1.0)
            self._wake.clear()
            if self._stop.is_set():
                break
            now = time.monotonic()
            try:
                self._take_pending()
                if playing and self._span_s > 0:
                    self._time_set = (self._time.value + (now - last) * self._speed.value) % self._span_s
                    self._time.value = self._time_set
                self._draw()
                error, repeats = None, 0
            except Exception as e:  # a bad window must not stop the viewer; say so in the panel and the log
                # It is tried again (a live source may come back), but a lasting error is logged once, then
                # counted at 10, 100, ... recurrences rather than every retry.
                self._drawn = None
                text = f"{type(e).__name__}: {e}"
                repeats = repeats + 1 if text == error else 0
                error = text
                if repeats == 0:
                    print(f"lrm4d view: {text}", file=sys.stderr, flush=True)
                elif repeats >= 10 and 10 ** round(math.log10(repeats)) == repeats:
                    print(f"lrm4d view: the same error {repeats} more times (still retrying)", file=sys.stderr,
                          flush=True)
                self._info.content = f"**error**: {text}" + (f" ({repeats + 1} times)" if repeats else "")
                self._stop.wait(RETRY_S)
            last = now

    def _take_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is None:
            return
        windows, start_s, keep_fraction = pending
        old_fraction = self._time.value / self._span_s if self._windows and self._span_s > 0 else 1.0
        self._windows, self._serial = windows, self._serial + 1
        self._cache.clear()
        self._origin_ns = min(w.start_ns for w in windows)
        self._span_s = (max(w.end_ns for w in windows) - self._origin_ns) * 1e-9
        if keep_fraction:
            value = old_fraction * self._span_s
        elif start_s is not None:
            value = min(max(start_s, 0.0), self._span_s)
        else:
            value = (windows[0].mid_ns - self._origin_ns) * 1e-9
        self._time.step = slider_step(self._span_s)
        self._time.max = max(self._span_s, self._time.step)
        self._time_set = self._time.value = value
        self._time.disabled = False

    def _load(self, index: int) -> ViewerWindow:
        if index not in self._cache:
            ref = self._windows[index]
            if len(self._windows) > 1:
                self._info.content = f"loading {ref.label} ..."
            self._cache[index] = ref.load()
            while len(self._cache) > WINDOWS_CACHED:
                self._cache.popitem(last=False)
        self._cache.move_to_end(index)
        return self._cache[index]

    def _draw(self) -> None:
        if not self._windows:
            return
        if not 0.0 <= self._time.value <= self._span_s:  # a time typed into the slider's box: the recording's end
            self._time_set = self._time.value = min(max(self._time.value, 0.0), self._span_s)
        stamp = self._origin_ns + int(round(self._time.value * 1e9))
        index = nearest_window(self._windows, stamp)
        key = (self._serial, index, stamp, self._show_gaussians.value, self._show_cameras.value)
        if key == self._drawn:
            return
        win = self._load(index)
        has_cameras = win.views is not None and len(win.views) > 0
        if self._show_cameras.visible != has_cameras:  # a PLY has no cameras to show
            self._show_cameras.visible = has_cameras
        stamp = min(max(stamp, win.start_ns), win.end_ns)
        if not self._framed:
            self._frame(win, stamp)
        t0 = time.perf_counter()
        g = win.slice(stamp)
        means, covars = g.means.detach().cpu().numpy(), g.covars.detach().cpu().numpy()
        colors, opacities = g.colors.detach().cpu().numpy(), g.opacities.detach().cpu().numpy()
        t1 = time.perf_counter()
        if self._show_gaussians.value and len(means):
            self._splats = self.server.scene.add_gaussian_splats(SPLATS, means, covars, colors, opacities[:, None])
        elif self._splats is not None:
            self._splats.remove()
            self._splats = None
        t2 = time.perf_counter()
        self._draw_cameras(win, stamp)
        ref = self._windows[index]
        where = f"{ref.label} ({index + 1}/{len(self._windows)})" if len(self._windows) > 1 else ref.label
        self._info.content = (
            f"**{where}**: {(win.start_ns - self._origin_ns) * 1e-9:.3f} to {(win.end_ns - self._origin_ns) * 1e-9:.3f} s"
            f"  \nshown: **{(stamp - self._origin_ns) * 1e-9:.3f} s** (stamp {stamp} ns), {len(means):,} Gaussians"
            + ("" if len(means) else " (none is alive at this moment: their time extents lie elsewhere)"))
        self.draws.append(Draw(stamp, len(means), t1 - t0, t2 - t1, time.monotonic()))
        self._drawn = key

    def _draw_cameras(self, win: ViewerWindow, stamp: int) -> None:
        """One frustum per camera: its view nearest `stamp` in the window, with that view's image."""
        views = win.views if self._show_cameras.value else None
        wanted = {}
        if views is not None and len(views):
            for cam in views.camera_ids.unique().tolist():
                idx = torch.nonzero(views.camera_ids == cam).squeeze(1)
                wanted[views.camera_names[cam]] = int(idx[(views.stamps_ns[idx] - stamp).abs().argmin()])
        for name in [n for n in self._frustums if n not in wanted]:
            self._frustums.pop(name)[1].remove()
        if not wanted:
            return
        scale = 0.08 * float((views.camera_centers - views.camera_centers.mean(0)).norm(dim=-1).mean().clamp_min(0.1))
        for name, i in wanted.items():
            if self._frustums.get(name, (None,))[0] == (self._serial, i):
                continue
            from ..gaussians import rotmat_to_quat

            c2w = views.camtoworlds[i]
            handle = self.server.scene.add_camera_frustum(
                f"/cameras/{name}", fov=vertical_fov(views.Ks[i], views.height), aspect=views.width / views.height,
                scale=scale, thickness=0.04 * scale, image=frustum_image(views.images[i]), format="jpeg",
                wxyz=rotmat_to_quat(c2w[None, :3, :3].double())[0].numpy(), position=c2w[:3, 3].numpy(),
                color=(40, 40, 40))
            self._frustums[name] = ((self._serial, i), handle)

    def _frame(self, win: ViewerWindow, stamp: int) -> None:
        """Point every client's camera (and the initial camera) at the scene, once, with the world's up."""
        from ..cameras import SceneNormalization, estimate_up

        if win.views is not None and len(win.views):
            c2w = win.views.camtoworlds
            center = SceneNormalization.from_cameras(c2w).center
            up = estimate_up(c2w)
            eye = center + overview_offset(c2w[0, :3, 3] - center, up)
        else:
            g = win.slice(stamp)
            if len(g) == 0:
                return
            means = g.means.detach().cpu().double()
            center = means.median(0).values
            # the dense core, not the floor and walls that reach far out: the median distance of the Gaussians within
            # twice the lower quartile's. Framed at the median of all (3.8 m: the eye 11 m off) the demo's robot was
            # a few specks, and between its frames, where its pixel-sized splats are 0.4 opaque, the browser drew
            # nothing of it or its table; at its core's 1.0 m they show at every moment. A scene without a far
            # tail (a moving blob) is framed as by the median.
            distance = (means - center).norm(dim=-1)
            core = distance[distance <= 2.0 * torch.quantile(distance, 0.25)]
            radius = float(core.median().clamp_min(1e-3))
            up = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
            eye = center + 3.0 * radius * torch.tensor([1.0, -1.0, 0.8], dtype=torch.float64) / math.sqrt(2.64)
        distance = float((eye - center).norm())
        axes = self.server.scene.world_axes  # sized to the scene: viser's default is half a metre long
        axes.axes_length, axes.axes_radius = 0.15 * distance, 0.004 * distance
        up, center, eye = (tuple(float(x) for x in v) for v in (up, center, eye))
        self.server.scene.set_up_direction(up)
        cam = self.server.initial_camera
        cam.position, cam.look_at, cam.up = eye, center, up
        for client in self.server.get_clients().values():
            with client.atomic():
                client.camera.up_direction, client.camera.position, client.camera.look_at = up, eye, center
        self._framed = True


def overview_offset(offset: torch.Tensor, up: torch.Tensor, turn_deg: float = 35.0,
                    elevation_deg: float = 30.0, pull_back: float = 1.6) -> torch.Tensor:
    """Where to look from, relative to the scene centre, given a camera's offset (3,) from it and world up (3,):
    `pull_back` times as far, turned `turn_deg` about up and `elevation_deg` above the horizon, so that the camera's
    own frustum stands aside rather than in front of the view."""
    offset, up = offset.double(), up.double() / up.double().norm()
    flat = offset - (offset @ up) * up
    if flat.norm() < 1e-9 * max(float(offset.norm()), 1e-12):  # a camera straight above or below the centre
        flat = torch.linalg.cross(up, torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
        if flat.norm() < 1e-6:
            flat = torch.linalg.cross(up, torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    e1 = flat / flat.norm()
    e2 = torch.linalg.cross(up, e1)
    a, b = math.radians(turn_deg), math.radians(elevation_deg)
    direction = math.cos(b) * (math.cos(a) * e1 + math.sin(a) * e2) + math.sin(b) * up
    return pull_back * float(offset.norm()) * direction


def frustum_image(image: torch.Tensor, max_side: int = FRUSTUM_IMAGE_SIDE) -> np.ndarray:
    """(H,W,3) float [0,1] -> uint8 (h,w,3), at most max_side pixels on its longer side."""
    import cv2

    img = (image.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    s = max_side / max(img.shape[:2])
    if s < 1:
        img = cv2.resize(img, (max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s))),
                         interpolation=cv2.INTER_AREA)
    return img


def vertical_fov(K: torch.Tensor, height: int) -> float:
    """Vertical field of view (radians) of intrinsics K (3,3) for an image `height` pixels high."""
    return 2.0 * math.atan(0.5 * height / float(K[1, 1]))

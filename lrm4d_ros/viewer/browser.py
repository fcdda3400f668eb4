"""Headless Chromium driven over the DevTools protocol: open the viewer's page, use its controls as a person
would (click a checkbox, press keys on a slider) and take screenshots.

Used by the viewer's screenshot tests and scripts/viewer_screenshot.py. Software WebGL (SwiftShader) and flags
that keep Chromium off the network. Needs a `chromium` (Debian: apt-get install chromium), `chromium-browser` or
`google-chrome` binary.
"""
from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import numpy as np

BINARIES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio"]


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary on PATH, or None."""
    return next((p for p in map(shutil.which, BINARIES) if p), None)


class BrowserError(RuntimeError):
    """Chromium could not be started or did not answer."""


class HeadlessPage:
    """One headless Chromium page showing `url`, window width×height pixels. Use as a context manager."""

    def __init__(self, url: str, width: int = 960, height: int = 640, timeout: float = 30.0):
        from websockets.sync.client import connect

        binary = find_chromium()
        if binary is None:
            raise BrowserError(f"no Chromium binary on PATH (tried {', '.join(BINARIES)}); "
                               "install one, e.g. apt-get install chromium")
        self._profile = tempfile.mkdtemp(prefix="lrm4d-chromium-")
        self._proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={self._profile}", f"--window-size={width},{height}",
             "--remote-debugging-port=0", url],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            start_new_session=True)  # its own process group: close() ends the renderer and GPU helpers too
        self._ids = itertools.count(1)
        try:
            browser_ws = self._devtools_url(timeout)
            port = re.match(r"ws://[^:]+:(\d+)/", browser_ws).group(1)
            page_ws = self._page_url(int(port), timeout)
            self._ws = connect(page_ws, max_size=64 * 1024 * 1024, open_timeout=timeout)
        except BaseException:
            self.close()
            raise
        self._timeout = timeout
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=False)

    def _devtools_url(self, timeout: float) -> str:
        found: list[str] = []
        log: list[str] = []

        def read():
            for line in self._proc.stderr:
                log.append(line)
                m = re.search(r"DevTools listening on (ws://\S+)", line)
                if m:
                    found.append(m.group(1))
                    break
            # keep draining so Chromium never blocks on a full pipe
            for _ in self._proc.stderr:
                pass

        threading.Thread(target=read, daemon=True).start()
        end = time.monotonic() + timeout
        while not found and time.monotonic() < end and self._proc.poll() is None:
            time.sleep(0.05)
        if not found:
            raise BrowserError("Chromium did not open its DevTools port: " + "".join(log[-20:]))
        return found[0]

    @staticmethod
    def _page_url(port: int, timeout: float) -> str:
        from urllib.request import urlopen

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with urlopen(f"http://127.0.0.1:{port}/json/list", timeout=timeout) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
            time.sleep(0.1)
        raise BrowserError("Chromium opened no page")

    def send(self, method: str, **params):
        """One DevTools command; returns its result dict (events in between are skipped)."""
        msg_id = next(self._ids)
        self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        end = time.monotonic() + self._timeout
        while True:
            reply = json.loads(self._ws.recv(timeout=max(0.1, end - time.monotonic())))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def evaluate(self, expression: str):
        """Value of a JavaScript expression in the page (awaited if it is a promise)."""
        r = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise BrowserError(f"JavaScript error: {r['exceptionDetails']}")
        return r.get("result", {}).get("value")

    def press(self, key: str, code: int) -> None:
        """Press and release a key (DOM key name, Windows virtual key code) on the focused element."""
        for kind in ("rawKeyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", type=kind, key=key, code=key, windowsVirtualKeyCode=code)

    def screenshot(self) -> np.ndarray:
        """(H,W,3) uint8 RGB of the page as drawn now."""
        import cv2

        png = base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])
        bgr = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
        return np.ascontiguousarray(bgr[..., ::-1])

    def settled_screenshot(self, accept=lambda img: True, timeout: float = 30.0, interval: float = 0.5):
        """The first screenshot that `accept`s and equals the one taken `interval` s before it (drawing has
        settled); AssertionError after `timeout` s."""
        end, last = time.monotonic() + timeout, None
        while time.monotonic() < end:
            img = self.screenshot()
            if last is not None and np.array_equal(img, last) and accept(img):
                return img
            last = img
            time.sleep(interval)
        raise AssertionError(f"the page did not settle on an accepted image within {timeout} s")

    # -- viser's panel ---------------------------------------------------------------------------------
    def _control(self, label: str) -> str:
        """JavaScript expression for the input (checkbox or slider thumb) in the panel row labelled `label`."""
        return f"""(() => {{
            const labels = [...document.querySelectorAll('*')].filter(
                e => e.children.length === 0 && e.textContent.trim() === {json.dumps(label)});
            for (const e of labels) {{
                for (let p = e, k = 0; p && k < 6; p = p.parentElement, k++) {{
                    const x = p.querySelector('input[type=checkbox], [role=slider]');
                    if (x) return x;
                }}
            }}
            throw new Error('no control labelled ' + {json.dumps(label)});
        }})()"""

    def click(self, label: str) -> None:
        """Click the checkbox labelled `label` in viser's panel."""
        self.evaluate(f"{self._control(label)}.click()")

    def slider_key(self, label: str, key: str) -> None:
        """Focus the slider labelled `label` and press Home, End, ArrowLeft or ArrowRight on it."""
        codes = {"Home": 36, "End": 35, "ArrowLeft": 37, "ArrowRight": 39}
        self.evaluate(f"{self._control(label)}.focus()")
        self.press(key, codes[key])

    def slider_value(self, label: str) -> float:
        return float(self.evaluate(f"{self._control(label)}.getAttribute('aria-valuenow')"))

    def text(self) -> str:
        """The page's visible text (the panel's lines among it)."""
        return self.evaluate("document.body.innerText")

    def dismiss_notifications(self) -> None:
        """Close notifications (e.g. viser's "Software WebGL rendering detected")."""
        self.evaluate("document.querySelectorAll('.mantine-Notification-closeButton').forEach(b => b.click())")

    def close(self) -> None:
        ws = getattr(self, "_ws", None)
        if ws is not None:
            ws.close()
        if self._proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self._proc.wait()
        self._signal(signal.SIGKILL)  # helpers that outlive the browser would still write into the profile
        # a helper may still be flushing as it dies: retry, then leave what remains to the OS's tmp cleaning
        for attempt in range(5):
            try:
                shutil.rmtree(self._profile)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.2 * (attempt + 1))
        else:
            shutil.rmtree(self._profile, ignore_errors=True)

    def _signal(self, sig: int) -> None:
        """Send sig to Chromium's process group (the browser and its helpers); gone already is fine."""
        try:
            os.killpg(self._proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def __enter__(self) -> "HeadlessPage":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

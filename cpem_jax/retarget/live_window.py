"""The live run's preview window: each frame with the front end's and the model's 68 points, the
rate and latency, and the strongest ARKit weights (OpenCV's `imshow`).

`PreviewWindow.open()` returns None where no window can be shown: no display
(`display_available`: DISPLAY / WAYLAND_DISPLAY on Linux), or an OpenCV without a GUI backend
(opencv-python-headless). OpenCV is imported only when a window is opened.
"""
from __future__ import annotations

import logging
import os
import platform
from typing import Optional

import numpy as np

from cpem_jax.export import ARKIT_NAMES


def display_available() -> bool:
    """A display to open a window on: X11/Wayland on Linux (DISPLAY / WAYLAND_DISPLAY), always on
    Windows and macOS."""
    if platform.system() in ("Windows", "Darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class PreviewWindow:
    """An OpenCV window showing each frame with the detected (green) and the model's (red) 68
    points, the rate and latency, and the six strongest ARKit weights. `open()` returns None
    where no window can be shown. Closing it (Esc, q, or the window's close button) ends the
    run."""

    NAME = "cpem-jax live"

    def __init__(self, cv2_module):
        self._cv2 = cv2_module
        self.closed = False

    @classmethod
    def open(cls) -> Optional["PreviewWindow"]:
        if not display_available():
            logging.info("live preview: no display (DISPLAY is not set); running without a "
                         "window")
            return None
        import cv2
        try:
            cv2.namedWindow(cls.NAME, cv2.WINDOW_NORMAL)
        except cv2.error as error:
            logging.info("live preview: OpenCV cannot open a window (%s); running without one "
                         "(opencv-python-headless has no GUI)", str(error).strip().splitlines()[-1])
            return None
        return cls(cv2)

    def show(self, image: np.ndarray, result, arkit: np.ndarray, rate: float,
             latency_ms: float) -> None:
        cv2 = self._cv2
        canvas = np.ascontiguousarray(image[:, :, ::-1])
        scale = 640.0 / max(canvas.shape[:2])
        if scale < 1.0:
            canvas = cv2.resize(canvas, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        else:
            scale = 1.0
        if result.found:
            for points, color in ((result.landmarks_detected, (0, 200, 0)),
                                  (result.landmarks_fitted, (0, 0, 230))):
                for u, v in np.asarray(points) * scale:
                    cv2.circle(canvas, (int(u), int(v)), 2, color, -1)
        lines = [f"{rate:.1f} frames/s, latency {latency_ms:.0f} ms"
                 + ("" if result.calibrated else ", calibrating")]
        if result.found:
            for k in np.argsort(-arkit)[:6]:
                lines.append(f"{ARKIT_NAMES[k]} {arkit[k]:.2f}")
        else:
            lines.append("no face")
        for i, line in enumerate(lines):
            cv2.putText(canvas, line, (8, 20 + 18 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        (255, 255, 255), 1, cv2.LINE_AA)
        cv2.imshow(self.NAME, canvas)
        key = cv2.waitKey(1) & 0xFF
        gone = cv2.getWindowProperty(self.NAME, cv2.WND_PROP_VISIBLE) < 1
        self.closed = self.closed or key in (27, ord("q")) or gone

    def close(self) -> None:
        try:
            self._cv2.destroyWindow(self.NAME)
        except self._cv2.error:
            pass

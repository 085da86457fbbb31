"""Per-frame timings of a live run (`retarget.live`) and the `live` object of its summary.json:
frames per second processed, the source's rate, dropped frames, latency from a frame's arrival
to its outputs (median, 95th percentile), front-end and solve times, CPU time per frame, and the
load, compile and first-output times.
"""
from __future__ import annotations

import time
from typing import Any, Dict, List, Optional

import numpy as np

from cpem_jax.io.live import LiveFrames


class LiveStats:
    """Per-frame timings of a live run and the `live` object of its summary."""

    def __init__(self, source_fps: float, realtime: bool):
        self.source_fps = float(source_fps)
        self.realtime = realtime
        self.latency_ms: List[float] = []
        self.front_ms: List[float] = []
        self.solve_ms: List[float] = []
        self.loop_start: Optional[float] = None
        self.loop_end: Optional[float] = None
        self.cpu_start = 0.0
        self.cpu_end: Optional[float] = None
        self.frames: Optional[LiveFrames] = None
        self.found = 0
        self.first_output_s: Optional[float] = None
        self.compile_s = 0.0
        self.load_s = 0.0

    def to_dict(self) -> Dict[str, Any]:
        n = len(self.latency_ms)
        end = self.loop_end if self.loop_end is not None else time.perf_counter()
        cpu_end = self.cpu_end if self.cpu_end is not None else time.process_time()
        wall = end - self.loop_start if self.loop_start is not None else 0.0
        dropped = self.frames.dropped if self.frames is not None else 0
        pct = lambda values, q: round(float(np.percentile(values, q)), 2) if values else None
        return {
            "realtime": self.realtime,
            "frames_processed": n,
            "frames_with_face": self.found,
            "frames_per_second": round(n / wall, 2) if wall > 0 else None,
            "source_fps": round(self.source_fps, 3),
            "dropped_frames": dropped,
            "dropped_fraction": round(dropped / (n + dropped), 4) if n + dropped else 0.0,
            "latency_ms_median": pct(self.latency_ms, 50),
            "latency_ms_p95": pct(self.latency_ms, 95),
            "front_end_ms_median": pct(self.front_ms, 50),
            "solve_ms_median": pct(self.solve_ms, 50),
            "cpu_ms_per_frame": round((cpu_end - self.cpu_start) * 1e3 / n, 2) if n else None,
            "seconds": round(wall, 3),
            "load_s": round(self.load_s, 3),
            "compile_s": round(self.compile_s, 3),
            "first_output_s": (None if self.first_output_s is None
                               else round(self.first_output_s, 3)),
        }

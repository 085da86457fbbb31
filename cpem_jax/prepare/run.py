"""Preparing videos one after another: resume, bad inputs, progress, summary.

`Preparer(options).prepare(item)` prepares one video (`cpem_jax.prepare.inputs.InputItem`) into
the output folder (`cpem_jax.prepare.layout`) and returns a `VideoResult`:
  * "done": its marker exists and covers what is asked (a teacher, when one is asked for), and
    it was made from the same source: nothing is done;
  * "prepared": written now (leftovers of an earlier, interrupted attempt removed first);
  * "failed": a bad input (missing, unreadable, no face, an id clash), with one line saying why;
    nothing of it stays in the output, and the other videos go on.
The landmarker, the face model and the fit are built on first use, so a rerun over finished
videos starts in a moment.
"""
from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
from tqdm import tqdm

from cpem_jax.prepare import frontend, layout
from cpem_jax.prepare.inputs import InputItem

_LOG = logging.getLogger(__name__)

MARKER_SCHEMA = "cpem-jax-prepare/1"
# |yaw| at or below which a frame is flagged near-frontal. Calibrated on the shared demo set's
# flags (176 VoxCeleb2 frames): our yaw (mean-face PnP on MediaPipe's points; the teacher fit's
# yaw follows it within 0.5 deg RMS) reproduces them best at 9.5 deg (94 % of frames agree;
# 15 deg, the paper's figure for its own pose estimator, agrees on 82 %).
DEFAULT_YAW_THRESHOLD_DEG = 9.5


@dataclasses.dataclass(frozen=True)
class PrepareOptions:
    """Settings of one `cpem-jax prepare` run.

    Attributes:
      output: the output folder (one CPEM source).
      teacher: run the identity-locked fit and write the teacher file.
      landmarker: front end, "auto", "mediapipe" or "dlib" (`cpem_jax.detect.make_landmarker`).
      size: crop side in pixels (also the fit's crop).
      yaw_threshold_deg: frames with |yaw| at or below this are flagged near-frontal.
      max_frames: read at most this many frames per input (None: all).
      fit_config: the fit's FitConfig (None: the default at `size`).
      face_model: face model spec for the fit and the PnP (None: the default model).
      progress: show progress bars.
    """
    output: str
    teacher: bool = True
    landmarker: str = "auto"
    size: int = 224
    yaw_threshold_deg: float = DEFAULT_YAW_THRESHOLD_DEG
    max_frames: Optional[int] = None
    fit_config: object = None
    face_model: Optional[str] = None
    progress: bool = True


@dataclasses.dataclass(frozen=True)
class VideoResult:
    """What happened to one input: status "done", "prepared" or "failed"; frames written (for
    "done": as its marker says); the reason when it failed; its marker."""
    item: InputItem
    status: str
    frames: int = 0
    reason: str = ""
    marker: Optional[dict] = None


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


class Preparer:
    """Prepares videos into `options.output` (module docstring)."""

    def __init__(self, options: PrepareOptions):
        self.options = options
        self._landmarker = None
        self._dlib = None
        self._model = None
        self._estimator = None
        self._initial_poses = None

    # Built on first use -------------------------------------------------------------------
    @property
    def landmarker(self):
        if self._landmarker is None:
            from cpem_jax.detect import make_landmarker
            self._landmarker = make_landmarker(self.options.landmarker)
        return self._landmarker

    @property
    def dlib(self) -> frontend.Dlib68:
        if self._dlib is None:
            from cpem_jax.detect.dlib_landmarker import DlibLandmarker
            reuse = self.landmarker if isinstance(self.landmarker, DlibLandmarker) else None
            self._dlib = frontend.Dlib68(reuse)
            if self._dlib.note:
                _LOG.warning("%s", self._dlib.note)
        return self._dlib

    @property
    def model(self):
        if self._model is None:
            from cpem_jax.face_model import load_face_model
            self._model = load_face_model(self.options.face_model)
        return self._model

    @property
    def initial_poses(self):
        """The fit's starting pose (mean-face PnP), for the frontal flags without a teacher."""
        if self._initial_poses is None:
            from cpem_jax.face_model.dense_landmarks import dense_landmarks_for
            from cpem_jax.fit.fitter import FitConfig, SequenceFitter
            fitter = SequenceFitter(self.model, FitConfig(size=self.options.size),
                                    dense=dense_landmarks_for(self.model))
            # Dense points only where the model has a table for them (as the fit does).
            self._initial_poses = lambda landmarks, dense: fitter.initial_poses(
                landmarks, dense if fitter.dense is not None else None)
        return self._initial_poses

    @property
    def estimator(self):
        if self._estimator is None:
            from cpem_jax.estimation.estimate import make_estimator
            from cpem_jax.fit.fitter import FitConfig
            config = self.options.fit_config or FitConfig(size=self.options.size)
            self._estimator = make_estimator("fit", config, self.options.face_model,
                                             landmarker=self.landmarker)
        return self._estimator

    # One video ----------------------------------------------------------------------------
    def finished(self, item: InputItem) -> Optional[VideoResult]:
        """A result when the video needs no work ("done", or "failed" for an id clash with a
        finished video of another source); None when it must be prepared."""
        paths = layout.VideoPaths(self.options.output, item.person_id, item.video_id)
        marker = layout.read_done(paths)
        if marker is None or item.problem is not None:
            return None
        source = os.path.realpath(item.source)
        if marker.get("source") != source:
            return VideoResult(item, "failed", reason=(
                f"{item.key} in {self.options.output} was prepared from {marker.get('source')}; "
                f"rename this input or prepare it into another folder"))
        if marker.get("crop_size") != self.options.size:
            return VideoResult(item, "failed", reason=(
                f"{item.key} was prepared at {marker.get('crop_size')} px, not "
                f"{self.options.size}; use one crop size per output folder"))
        if self.options.teacher and not marker.get("teacher"):
            return None  # Prepared with --no-teacher; now the teacher is asked for.
        return VideoResult(item, "done", frames=int(marker.get("frames_written", 0)),
                           marker=marker)

    def prepare(self, item: InputItem) -> VideoResult:
        """Prepares one video (module docstring); never raises for a bad input."""
        from cpem_jax.detect.pipeline import NoFaceError
        from cpem_jax.io.images import FrameSourceError

        early = self.finished(item)
        if early is not None:
            return early
        if item.problem is not None:
            return VideoResult(item, "failed", reason=item.problem)
        # Set-up errors (a backend or face model that cannot load) stop the run, not one video.
        _ = self.estimator if self.options.teacher else (self.landmarker, self.initial_poses)
        paths = layout.VideoPaths(self.options.output, item.person_id, item.video_id)
        paths.clear()
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            frames = self._frames(item)
        except (NoFaceError, FrameSourceError, OSError, ValueError, RuntimeError) as err:
            return VideoResult(item, "failed", reason=_first_line(err))
        problem = frontend.check_frames(frames, self.options.size)
        if problem is not None:
            return VideoResult(item, "failed", reason=problem)
        t1, c1 = time.perf_counter(), time.process_time()
        try:
            marker = self._write(item, paths, frames)
        except (OSError, ValueError) as err:
            try:
                paths.clear()  # No half video stays behind (a rerun would redo it anyway).
            except OSError:
                pass
            return VideoResult(item, "failed", reason=f"writing failed: {_first_line(err)}")
        marker["seconds"] = {"front_end_and_fit": round(t1 - t0, 3),
                             "dlib_masks_and_files": round(time.perf_counter() - t1, 3),
                             **marker["seconds"]}
        # CPU time of the process (all its threads): the cost on a loaded machine.
        marker["cpu_seconds"] = {"front_end_and_fit": round(c1 - c0, 3),
                                 "dlib_masks_and_files": round(time.process_time() - c1, 3)}
        layout.write_done(paths, marker)
        return VideoResult(item, "prepared", frames=frames.n_found, marker=marker)

    def _frames(self, item: InputItem) -> frontend.VideoFrames:
        options = self.options
        if options.teacher:
            estimate = self.estimator(item.source, face=0, max_frames=options.max_frames,
                                      progress=options.progress)
            return frontend.frames_from_estimate(estimate)
        from cpem_jax.detect.crop import CropConfig
        from cpem_jax.detect.pipeline import detect_and_crop
        tracked = detect_and_crop(item.source, self.landmarker, CropConfig(size=options.size),
                                  face=0, max_frames=options.max_frames,
                                  progress=options.progress)
        return frontend.frames_from_tracked(tracked, self.initial_poses)

    def _write(self, item: InputItem, paths: layout.VideoPaths,
               frames: frontend.VideoFrames) -> dict:
        """Writes every file of the video but its marker; returns the marker."""
        options = self.options
        paths.make_folders()
        dlib_points, dlib_detected = self.dlib(frames.crops, frames.landmarks)
        masks = frontend.skin_masks(frames.landmarks, options.size)
        flags = frontend.frontal_flags(frames.yaw_deg, options.yaw_threshold_deg)
        names = [layout.frame_name(i) for i in frames.frame_index]
        for m in tqdm(range(frames.n_found), desc=f"writing {item.key}", unit="frame",
                      leave=False, disable=not options.progress):
            layout.write_frame(paths, names[m], frames.crops[m], masks[m], frames.landmarks[m],
                               dlib_points[m])
        timings: Dict[str, float] = {}
        if frames.estimate is not None:
            from cpem_jax.export.coefficients import save_coefficients
            estimate = frames.estimate
            save_coefficients(estimate, paths.teacher_stem)
            layout.write_teacher_frames(paths, estimate.frame_index, estimate.face_found,
                                        dict(zip(frames.frame_index.tolist(), names)))
            timings = {k: round(float(v), 3) for k, v in estimate.timings.items()}
        layout.write_flags(paths, names, flags, frames.yaw_deg)
        root = os.path.abspath(options.output)
        yaw_from = "the teacher fit" if frames.yaw_source == "teacher" else "mean-face PnP"
        return {
            "schema": MARKER_SCHEMA, "source": os.path.realpath(item.source), "kind": item.kind,
            "person_id": item.person_id, "video_id": item.video_id,
            "frames_read": frames.n_read, "frames_written": frames.n_found,
            "frontal_frames": int(flags.sum()), "crop_size": options.size, "fps": frames.fps,
            "landmarker": type(self.landmarker).__name__,
            "landmarks2d": "dlib" if self.dlib.available else self.dlib.note,
            "dlib_detected_frames": int(dlib_detected),
            "frontal_rule": f"|yaw| <= {options.yaw_threshold_deg:g} deg, yaw from {yaw_from}",
            "teacher": frames.estimate is not None,
            "teacher_file": (os.path.relpath(paths.teacher_stem, root) + ".npz"
                             if frames.estimate is not None else None),
            "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
            "seconds": timings,
        }


def prepare_items(items: Sequence[InputItem], options: PrepareOptions,
                  report=None) -> List[VideoResult]:
    """Prepares `items` in order with an overall progress bar.

    Args:
      report: called with each VideoResult as it comes (default: a line for each failure and
        each prepared video, written through tqdm so the bars stay intact).
    Returns:
      one VideoResult per item.
    """
    preparer = Preparer(options)
    report = report or _report_line
    results: List[VideoResult] = []
    with tqdm(items, desc="prepare", unit="video", disable=not options.progress) as bar:
        for item in bar:
            bar.set_postfix_str(item.key, refresh=True)
            result = preparer.prepare(item)
            results.append(result)
            report(result)
    return results


def _report_line(result: VideoResult) -> None:
    """One line on stderr (where the bars are) per failed or prepared video."""
    if result.status == "failed":
        tqdm.write(f"cpem-jax prepare: skipped {result.item.source}: {result.reason}",
                   file=sys.stderr)
    elif result.status == "prepared":
        tqdm.write(f"prepared {result.item.key}: {result.frames} frames "
                   f"({result.marker['frames_read']} read) from {result.item.source}",
                   file=sys.stderr)


def summary(results: Sequence[VideoResult], output: str) -> dict:
    """Counts and the failed inputs of a run, for the closing lines and the exit status."""
    by = lambda status: [r for r in results if r.status == status]
    return {
        "output": output,
        "prepared": len(by("prepared")), "prepared_frames": sum(r.frames for r in by("prepared")),
        "already_done": len(by("done")), "already_done_frames": sum(r.frames for r in by("done")),
        "failed": [{"input": r.item.source, "ids": r.item.key, "reason": r.reason}
                   for r in by("failed")],
        "frontal_frames": int(np.sum([r.marker["frontal_frames"] for r in by("prepared")]))
        if by("prepared") else 0,
    }

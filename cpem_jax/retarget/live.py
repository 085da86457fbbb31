"""`cpem-jax retarget --live`: frames estimated as they arrive, outputs written as they go.

    status, summary = run_live(options, LiveOptions(realtime=True, vmc=("127.0.0.1", 39539)))

Frames: a webcam delivers at its own rate; a file is replayed at its real rate with
`realtime=True` (as a camera would deliver it, for tests and benchmarks) or read as fast as it
decodes. Both live sources go through `io.live.LiveFrames`: the estimator always takes the newest
frame, and the frames it had no time for are dropped and counted (never queued, so the latency
does not grow). Each frame goes through `estimation.streaming.StreamingEstimator` (front end,
locked identity, a landmark solve warm-started from the previous frame), the causal One Euro
filter (`export.smoothing.StreamSmoother`, the offline run's settings) and then:

  blendshapes.csv    a row per processed frame, flushed at once (`export.stream_writers`)
  blendshapes.jsonl  JSON Lines: a header line, then one line per frame (smoothed and raw)
  livelink.csv       Live Link Face rows at 60 per second, appended as frames arrive
  VMC                one OSC bundle per frame to `--vmc HOST:PORT` (`export.vmc`)
  window             the frame with the detected (green) and fitted (red) points and the
                     strongest weights, where a display exists (`retarget.live_window`)
and when the run ends (the source ends, `--max-frames`, the window is closed, or Ctrl-C):
  blendshapes.json   the track JSON of `csv_json` (as the offline run writes it), from the lines
  face.glb, <avatar>_animated.glb   from the whole track, as the offline run writes them
  identity.npz       the identity calibrated live (`cpem-jax retarget --identity` reuses it)
  summary.json       written last, with a `live` object: frames_per_second (processed),
                     source_fps, dropped_frames, latency_ms_median / _p95 (frame arrival to its
                     outputs written and sent), cpu_ms_per_frame (process CPU time / frames), ...
                     (`retarget.live_stats`)
The incremental files carry their final names from the start and are valid after every frame
(a crash leaves them valid up to the last row); the files made at the end are written under
temporary names and renamed, as in the offline run. The offline-only outputs (coefficients,
the preview and overlay videos) need the whole video and are refused in a live run.

Ctrl-C: the loop stops after the frame in hand, the end-of-run files are written, the command
prints one line and exits with 130. If the loop does not stop within a second (a compilation
in progress), the run ends at once with the incremental files valid up to their last row and a
summary listing them (`retarget.run_state.LiveRunState.finish_interrupted`).
"""
from __future__ import annotations

import dataclasses
import gc
import logging
import os
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from cpem_jax.estimation.identity import IdentityProfile
from cpem_jax.estimation.live_front import LiveFront, make_front
from cpem_jax.estimation.streaming import StreamConfig, StreamingEstimator
from cpem_jax.export import (AvatarError, FrameTrack, build_arkit_mapping, retarget_avatar,
                             write_face_glb)
from cpem_jax.export.smoothing import StreamSmoother
from cpem_jax.export.stream_writers import (CsvStreamWriter, JsonLinesStreamWriter,
                                            LiveLinkStreamWriter)
from cpem_jax.evaluation.landmarks import box_size, landmark_box
from cpem_jax.evaluation.landmarks import nme as landmark_nme
from cpem_jax.export.vmc import VmcSender
from cpem_jax.io.frames import open_frames
from cpem_jax.io.live import LiveFrames
from cpem_jax.retarget.live_stats import LiveStats
from cpem_jax.retarget.live_window import PreviewWindow
from cpem_jax.retarget.output_files import SUMMARY, OutputFiles, check_output_folder
from cpem_jax.retarget.pipeline import (FILE_NAMES, RetargetOptions, avatar_output_path,
                                        avatar_report_dict, check_avatar_first)
from cpem_jax.retarget.run_state import LiveRunState

LIVE_OUTPUTS = ("csv", "json", "livelink", "glb", "avatar")
OFFLINE_ONLY = ("coefficients", "preview", "overlay")
STREAM_FILES = {"csv": "blendshapes.csv", "json": "blendshapes.jsonl",
                "livelink": "livelink.csv"}
PROFILE_NAME = "identity.npz"
GRACE_S = 1.0  # How long Ctrl-C waits for the loop to stop before ending the run at once.
CALIBRATION_WAIT_S = 120.0  # At the end, how long a running identity calibration is awaited.


@dataclasses.dataclass
class LiveOptions:
    """What a live run adds to `RetargetOptions`.

    Attributes:
      webcam: camera index (None: `RetargetOptions.source` is a file).
      realtime: replay a file at its real rate (frames the estimator has no time for are
        dropped); False reads it as fast as it is processed (nothing dropped).
      vmc: (host, port) to stream to, or None; vmc_names: "perfectsync" or "arkit".
      identity: an identity profile (.npz) to use instead of calibrating.
      window: show the preview window: None = when a display exists, False = never.
      stream: the StreamConfig.
    """
    webcam: Optional[int] = None
    realtime: bool = False
    vmc: Optional[Tuple[str, int]] = None
    vmc_names: str = "perfectsync"
    identity: Optional[str] = None
    window: Optional[bool] = None
    stream: StreamConfig = StreamConfig()


def live_outputs(requested: Sequence[str], explicit: bool) -> Tuple[str, ...]:
    """The outputs of a live run: `requested` without the offline-only ones; when they were
    named explicitly (not `all`), naming an offline-only one is an error (one line)."""
    refused = [o for o in requested if o in OFFLINE_ONLY]
    if refused and explicit:
        raise ValueError(f"a live run writes {', '.join(LIVE_OUTPUTS)}; {', '.join(refused)} "
                         "need the whole video: run without --live/--webcam for them")
    return tuple(o for o in requested if o in LIVE_OUTPUTS)


def _frames(source, webcam: bool, realtime: bool, state: LiveRunState, stats: LiveStats):
    """(frame, arrival time) pairs: through LiveFrames for a camera or a real-time replay, else
    straight from the file."""
    if webcam or realtime:
        live = LiveFrames(source, realtime=not webcam, clock=time.perf_counter)
        state.frames = stats.frames = live
        if state.stop_requested.is_set():
            live.stop()
        with live:
            yield from live
        return
    try:
        for frame in source:
            yield frame, time.perf_counter()
            if state.stop_requested.is_set():
                return
    finally:
        source.close()


def run_live(options: RetargetOptions, live: LiveOptions,
             state: Optional[LiveRunState] = None) -> Tuple[int, Dict[str, Any]]:
    """Runs a live retargeting (module docstring). Returns (exit status, summary): 0 all
    written, 1 an output failed or no frame showed a face, 130 stopped by Ctrl-C.

    Raises (before any file is written): ValueError, OSError, RuntimeError with one line (a bad
    option, output folder, profile, source or front end).
    """
    start = time.perf_counter()
    state = state or LiveRunState()
    wanted = set(options.outputs)
    if not options.avatar:
        wanted.discard("avatar")
    check_output_folder(options.output)
    failures: Dict[str, str] = {}

    state.phase = "opening the input"
    spec = live.webcam if live.webcam is not None else options.source
    source = open_frames(spec, max_frames=options.max_frames)  # A camera is checked first.
    try:
        sender = None
        if live.vmc is not None:
            try:
                sender = VmcSender(live.vmc[0], live.vmc[1], names=live.vmc_names)
            except OSError as error:
                raise OSError(f"cannot send VMC frames to {live.vmc[0]}:{live.vmc[1]} "
                              f"({error.strerror or error}); check --vmc HOST:PORT") from None
        state.phase = "loading the face model and the front end"
        from cpem_jax.face_model import load_face_model
        model = load_face_model(options.face_model)
        target_map = check_avatar_first(options, wanted, model.expression_names, failures)
        profile = IdentityProfile.load(live.identity, model) if live.identity else None
        front = LiveFront(make_front(options.landmarker, options.face), face=options.face)
        estimator = StreamingEstimator(model, front, live.stream, profile)
    except BaseException:
        source.close()
        raise
    stats = LiveStats(source.fps, live.realtime)
    stats.load_s = time.perf_counter() - start
    state.phase = "compiling"
    stats.compile_s = estimator.warm_up()
    # Start-up leaves millions of objects (JAX, MediaPipe, the model) for Python's collector: a
    # full collection would pause the first frames by 100+ ms. Collect once now and move the
    # survivors out of the collector's view (`gc.freeze`).
    gc.collect()
    gc.freeze()
    window = PreviewWindow.open() if live.window is not False else None

    files = OutputFiles(options.output)
    files.remove_stale()
    state.files = files
    names = model.expression_names
    smoothing = options.smoothing
    path_of = lambda name: os.path.join(options.output, STREAM_FILES[name])
    csv_writer = (CsvStreamWriter(path_of("csv"), names) if "csv" in wanted else None)
    jsonl = (JsonLinesStreamWriter(path_of("json"), names, source.fps, smoothing.to_dict(),
                                   {"live": True}) if "json" in wanted else None)
    livelink = (LiveLinkStreamWriter(path_of("livelink"), names, options.livelink_eyes,
                                     options.livelink_fps) if "livelink" in wanted else None)
    writers = [w for w in (csv_writer, jsonl, livelink) if w is not None]
    with files.lock:
        for name, writer in (("csv", csv_writer), ("jsonl", jsonl), ("livelink", livelink)):
            if writer is not None:
                files.complete[name] = [writer.path]
    state.writers = writers
    state.stats_fn = stats.to_dict
    state.summary = {"input": options.source if live.webcam is None else f"webcam:{live.webcam}",
                     "method": "live", "face_model": model.name, "video_fps": source.fps}

    mapping = build_arkit_mapping(names)
    smoother = StreamSmoother(smoothing)
    rows: Dict[str, List[Any]] = {k: [] for k in ("t", "found", "expression", "rotation",
                                                  "translation", "raw_expression",
                                                  "raw_rotation", "raw_translation")}
    held = (np.zeros(model.n_expression, np.float32), np.zeros(3, np.float32),
            np.zeros(3, np.float32))
    last_t = -np.inf
    rows_index: List[int] = []
    nme: List[float] = []
    vmc_error = None
    state.phase = "live"
    stats.cpu_start = time.process_time()
    stats.loop_start = time.perf_counter()
    stopped_by_window = False
    frames = _frames(source, live.webcam is not None, live.realtime, state, stats)
    try:
        for frame, arrival in frames:
            if state.stop_requested.is_set():
                break
            result = estimator.process(frame.index, frame.timestamp_s, frame.image)
            t = max(float(frame.timestamp_s), last_t + 1e-6)  # Strictly increasing for writers.
            last_t = t
            if result.found:
                raw = (result.expression, result.rotation, result.translation)
                held = raw if options.missing == "hold" else held
                stats.found += 1
                detected = result.landmarks_detected[None]
                nme.append(float(landmark_nme(result.landmarks_fitted[None], detected,
                                              box_size(landmark_box(detected)))[0]))
            else:
                raw = held if options.missing == "hold" else tuple(np.zeros_like(v) for v in held)
            expression, rotation, translation = smoother(*raw, t, result.found)
            for key, value in zip(rows, (t, result.found, expression, rotation, translation,
                                         *raw)):
                rows[key].append(value)
            if csv_writer is not None:
                csv_writer.write(frame.index, t, result.found, expression, rotation, translation)
            if jsonl is not None:
                jsonl.write(frame.index, t, result.found, expression, rotation, translation, raw,
                            {"calibrated": bool(result.calibrated)})
            if livelink is not None:
                livelink.write(t, expression, rotation)
            arkit = mapping.to_arkit(expression)
            if sender is not None and vmc_error is None:
                try:
                    sender.send(arkit, rotation if result.found else None)
                except OSError as error:
                    vmc_error = str(error)
                    failures["vmc"] = vmc_error
                    logging.error("%s; the other outputs go on", vmc_error)
            done = time.perf_counter()
            state.processed += 1
            rows_index.append(int(frame.index))
            if stats.first_output_s is None:
                stats.first_output_s = done - start
            stats.latency_ms.append((done - arrival) * 1e3)
            stats.front_ms.append(result.timings_ms["front"])
            stats.solve_ms.append(result.timings_ms["solve"])
            if window is not None:
                elapsed = done - stats.loop_start
                window.show(frame.image, result, arkit, state.processed / max(elapsed, 1e-9),
                            stats.latency_ms[-1])
                if window.closed:
                    stopped_by_window = True
                    break
            if state.stop_requested.is_set():
                break
    finally:
        stats.loop_end = time.perf_counter()
        stats.cpu_end = time.process_time()
        frames.close()
        if window is not None:
            window.close()
    interrupted = state.stop_requested.is_set() and not stopped_by_window
    if interrupted:
        state.stopped.set()
        state.phase = "finishing after Ctrl-C"
    for writer in writers:
        writer.close()

    # -- end of the run: the files made from the whole track --------------------------------
    n = len(rows["t"])
    if estimator.calibration_running and not interrupted:
        state.phase = "finishing the identity calibration"  # For face.glb and identity.npz.
        if estimator.wait_for_calibration(CALIBRATION_WAIT_S):
            estimator.take_identity(int(rows_index[-1]) + 1 if rows_index else 0)
    track = None
    if n:
        track = FrameTrack(timestamps=np.asarray(rows["t"]), face_found=np.asarray(rows["found"]),
                           expression=np.stack(rows["expression"]), unit_names=names,
                           rotation=np.stack(rows["rotation"]),
                           translation=np.stack(rows["translation"]), fps=source.fps,
                           expression_raw=np.stack(rows["raw_expression"]),
                           rotation_raw=np.stack(rows["raw_rotation"]),
                           translation_raw=np.stack(rows["raw_translation"]))
    extra: Dict[str, Any] = {}

    def write(name: str, finals: Sequence[str], writer) -> None:
        state.phase = f"writing {', '.join(os.path.basename(p) for p in finals)}"
        try:
            with files.writing(name, finals) as temps:
                writer(temps)
        except (OSError, RuntimeError, ValueError, AvatarError) as error:
            failures[name] = str(error)
            logging.error("%s not written: %s", name, error)

    if track is not None:
        if jsonl is not None:
            write("json", [os.path.join(options.output, FILE_NAMES["json"])],
                  lambda temps: jsonl.complete_json(temps[0]))
        if "glb" in wanted:
            identity = np.asarray(estimator.shared.identity, np.float32)
            write("glb", [os.path.join(options.output, FILE_NAMES["glb"])],
                  lambda temps: extra.update(glb_check=write_face_glb(
                      temps[0], model, identity, track, names=options.glb_names)))
        if "avatar" in wanted:
            report = []
            write("avatar", [avatar_output_path(options.output, options.avatar)],
                  lambda temps: report.append(retarget_avatar(
                      options.avatar, track, temps[0], head_node=options.head_node,
                      target_map=target_map)))
            if report:
                extra["avatar"] = avatar_report_dict(report[0])
    if estimator.calibrated and estimator.calibrated_at != -1:
        write("identity", [os.path.join(options.output, PROFILE_NAME)],
              lambda temps: estimator.profile.save(temps[0]))
    if stats.found == 0:
        failures["face"] = (f"no face found in any of the {n} frames processed; check that the "
                            "input shows a face upright, evenly lit and large enough")
    if sender is not None:
        extra["vmc"] = {"address": f"{sender.address[0]}:{sender.address[1]}",
                        "frames_sent": sender.sent, "names": live.vmc_names}

    finite = [e for e in nme if np.isfinite(e)]
    summary = {
        **state.summary,
        "frames": n, "frames_with_face": stats.found, "missing": options.missing,
        "smoothing": smoothing.to_dict(),
        "live": stats.to_dict(),
        "calibration": estimator.summary(),
        "fit_quality": {"nme_mean": round(float(np.mean(finite)), 4) if finite else None,
                        "nme_p95": (round(float(np.percentile(finite, 95)), 4) if finite
                                    else None)},
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "outputs": files.sizes(),
        **extra,
        "failures": failures,
    }
    if interrupted:
        summary["interrupted"] = {"phase": "live", "frames_seen": n}
    state.phase = f"writing {SUMMARY}"
    with files.lock:
        files.write_json(SUMMARY, summary)
    state.phase = "done"
    status = 130 if interrupted else (1 if failures else 0)
    return status, summary

"""Live retargeting replayed in real time: speed, dropped frames, latency, CPU, start-up time, and
accuracy against the offline fit, with MediaPipe's own FaceLandmarker blendshapes as the speed
reference on the same replay.

Per video:
  * ours: `cpem-jax retarget VIDEO -o OUT --realtime --outputs csv,json --no-preview` as a
    subprocess (the user's view); the figures are the `live` object of its summary.json, plus the
    time from starting the process to the first row of blendshapes.csv on disk;
  * capacity: the same with `--live` and no `--realtime` (every frame, as fast as it goes);
  * MediaPipe: the FaceLandmarker task (VIDEO mode, face blendshapes on, one face) on the same
    real-time replay (`io.live.LiveFrames`), in this process: frames/s, dropped, latency from a
    frame's arrival to its blendshapes, process CPU per frame;
  * accuracy: per-unit mean absolute difference of the 52 ARKit weights (unsmoothed: the "raw"
    values of blendshapes.json) between the live run and an offline run (`cpem-jax retarget
    VIDEO -o DIR --outputs csv,json`, passed with --offline-root), over the frames the live run
    processed, then the mean over the units; "after calibration" leaves out the frames solved
    before the live identity was ready. MediaPipe's own blendshapes against the same offline fit
    are listed for comparison (another estimator, not a target).
Cold and warm start: `--startup` runs ours twice on the first video with an empty compilation
cache folder (the first run compiles, the second loads from the cache).
Photometric refinement: `--photometric-cost` times one frame's photometric solve (the fit's
objective with the photometric term, on the first frame of the first video, the crop rendered at
P pixels, for a few iteration counts), to see whether it fits in a frame's time.

Run (figures go to experiments/live/README.md):
  python benchmarks/live_replay.py --videos V1 V2 --offline-root OFFLINE --out /tmp/live
  python benchmarks/live_replay.py --videos V1 --startup --photometric-cost --no-replay \
      --out /tmp/live
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))  # mediapipe_tracks

from cpem_jax.export.arkit import ARKIT_NAMES  # noqa: E402


def uptime() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def run_ours(video: str, out: str, realtime: bool, env=None, extra=()) -> dict:
    """Runs the command; returns its summary plus the seconds from the process start to the
    first data row of blendshapes.csv."""
    csv_path = os.path.join(out, "blendshapes.csv")
    if os.path.exists(csv_path):
        os.remove(csv_path)
    command = [sys.executable, "-m", "cpem_jax.cli.main", "retarget", video, "-o", out,
               "--realtime" if realtime else "--live", "--outputs", "csv,json", "--no-preview",
               "--quiet", *extra]
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=str(ROOT), env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    first_row = None
    while process.poll() is None:
        if first_row is None and os.path.exists(csv_path):
            with open(csv_path) as f:
                if len(f.read().splitlines()) >= 2:
                    first_row = time.perf_counter() - start
        time.sleep(0.005)
    err = process.stderr.read().decode()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}:\n{err[-3000:]}")
    summary = json.loads(Path(out, "summary.json").read_text())
    summary["process_first_row_s"] = first_row
    summary["process_total_s"] = time.perf_counter() - start
    return summary


def raw_arkit(path: str) -> dict:
    """{frame index: raw ARKit weights [52]} of a track JSON (frames with a face only)."""
    obj = json.loads(Path(path).read_text())
    return {f["frame"]: np.asarray(f["raw"]["blendshapes"]) for f in obj["frames"]
            if f["face_found"]}


def mae(ours: dict, reference: dict, frames=None) -> tuple:
    """(mean over units of the per-unit MAE, the per-unit MAE [52], frames compared)."""
    common = sorted(set(ours) & set(reference) & (set(frames) if frames is not None
                                                  else set(ours)))
    if not common:
        return float("nan"), np.full(len(ARKIT_NAMES), np.nan), 0
    a = np.stack([ours[i] for i in common])
    b = np.stack([reference[i] for i in common])
    per_unit = np.abs(a - b).mean(axis=0)
    return float(per_unit.mean()), per_unit, len(common)


def mediapipe_replay(video: str) -> tuple:
    """MediaPipe's FaceLandmarker (VIDEO mode, blendshapes) on a real-time replay ->
    (stats dict, {frame index: ARKit weights [52]})."""
    from mediapipe_tracks import BlendshapeTracker

    from cpem_jax.detect.mediapipe_task import find_task
    from cpem_jax.io.frames import open_frames
    from cpem_jax.io.live import LiveFrames

    tracker = BlendshapeTracker(find_task())
    weights, latency = {}, []
    source = open_frames(video)
    live = LiveFrames(source, realtime=True, clock=time.perf_counter)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with live:
        for frame, arrival in live:
            row = tracker.weights(frame)
            if row is not None:
                weights[frame.index] = row
            latency.append((time.perf_counter() - arrival) * 1e3)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    tracker.close()
    n = len(latency)
    return {"frames_processed": n, "frames_per_second": round(n / wall, 2),
            "source_fps": round(live.fps, 3), "dropped_frames": live.dropped,
            "dropped_fraction": round(live.dropped / (n + live.dropped), 4),
            "latency_ms_median": round(float(np.median(latency)), 2),
            "latency_ms_p95": round(float(np.percentile(latency, 95)), 2),
            "cpu_ms_per_frame": round(cpu * 1e3 / n, 2)}, weights


def photometric_cost(video: str) -> list:
    """Seconds of one frame's photometric solve (compiled once, then timed over 5 calls) for
    render sizes 112 and 64 and 5 and 10 iterations."""
    import functools

    import cv2
    import jax
    import jax.numpy as jnp

    from cpem_jax.detect.crop import crop_affine, square_from_landmarks, warp_image
    from cpem_jax.estimation.live_front import LiveFront, make_front
    from cpem_jax.estimation.streaming import StreamConfig, StreamingEstimator
    from cpem_jax.face_model import load_face_model
    from cpem_jax.fit.objective import FitData, fit_terms
    from cpem_jax.fit.optimize import frame_step_sizes, run_adam
    from cpem_jax.fit.params import init_frames, project_frames
    from cpem_jax.fit.skin_mask import skin_mask_from_landmarks
    from cpem_jax.io.frames import open_frames
    from cpem_jax.losses.objective import Targets

    model = load_face_model()
    front = LiveFront(make_front("mediapipe"))
    frame = next(iter(open_frames(video, max_frames=1)))
    observation = front.observe(0, 0.0, frame.image)
    estimator = StreamingEstimator(model, front, StreamConfig(calibration_frames=10 ** 6))
    size = estimator.config.size
    affine = crop_affine(square_from_landmarks(observation.landmarks), size)
    crop = warp_image(frame.image, affine, (size, size))
    landmarks = (observation.landmarks @ affine[:, :2].T + affine[:, 2]).astype(np.float32)[None]
    dense = (observation.dense @ affine[:, :2].T + affine[:, 2]).astype(np.float32)[None]
    model_device = jax.device_put(model)

    def solve(shared, init, data, model, table, iterations):
        objective = lambda f: fit_terms(shared, f, data, model, estimator.camera,
                                        estimator.config.weights, None, photometric=True,
                                        dense=table)[0]
        return run_adam(objective, init, frame_step_sizes(), iterations, project_frames)

    rows = []
    for pixels in (112, 64):
        image = cv2.resize(crop, (pixels, pixels), interpolation=cv2.INTER_AREA)
        targets = Targets(
            image=jnp.asarray(image.astype(np.float32)[None] / 255.0),
            skin_mask=jnp.asarray(skin_mask_from_landmarks(landmarks[0] * pixels / size,
                                                           pixels)[None]),
            landmarks=jnp.asarray(landmarks), dense=jnp.asarray(dense),
            dense_weights=jnp.asarray(estimator.fitter.dense_weights(dense)))
        init = init_frames(model, 1)
        data = FitData(targets=targets, anchor=init, anchor_weight=jnp.float32(0.0))
        for iterations in (5, 10):
            fn = jax.jit(functools.partial(solve, iterations=iterations))
            args = (estimator.shared, init, data, model_device, estimator.dense_table)
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            compile_s = time.perf_counter() - start
            times = []
            for _ in range(5):
                start = time.perf_counter()
                jax.block_until_ready(fn(*args))
                times.append(time.perf_counter() - start)
            rows.append({"render_px": pixels, "iterations": iterations,
                         "ms_per_frame": round(float(np.median(times)) * 1e3, 1),
                         "compile_s": round(compile_s, 1), "load": uptime()})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", nargs="+", required=True)
    parser.add_argument("--offline-root", help="folder with one offline run per video stem")
    parser.add_argument("--out", required=True)
    parser.add_argument("--startup", action="store_true",
                        help="time to first output, cold and warm, on the first video")
    parser.add_argument("--no-capacity", action="store_true")
    parser.add_argument("--no-mediapipe", action="store_true")
    parser.add_argument("--photometric-cost", action="store_true")
    parser.add_argument("--no-replay", action="store_true",
                        help="only --startup / --photometric-cost")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rows = []
    if args.photometric_cost:
        rows.append({"photometric_cost": photometric_cost(args.videos[0])})
    if args.startup:
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, CPEM_COMPILE_CACHE=cache)
            for label in ("cold", "warm"):
                load = uptime()
                summary = run_ours(args.videos[0], os.path.join(args.out, f"startup_{label}"),
                                   True, env)
                row = {"startup": label, "video": Path(args.videos[0]).stem,
                       "process_first_row_s": round(summary["process_first_row_s"], 2),
                       "run_first_output_s": summary["live"]["first_output_s"],
                       "compile_s": summary["live"]["compile_s"],
                       "load_s": summary["live"]["load_s"], "load_before": load,
                       "load_after": uptime()}
                print(json.dumps(row), flush=True)
                rows.append(row)
    for video in [] if args.no_replay else args.videos:
        stem = Path(video).stem
        result = {"video": stem}
        load = uptime()
        ours = run_ours(video, os.path.join(args.out, stem), True)
        result["ours"] = {**ours["live"], "calibration": ours["calibration"],
                          "load_before": load, "load_after": uptime()}
        if not args.no_capacity:
            load = uptime()
            capacity = run_ours(video, os.path.join(args.out, stem + "_capacity"), False)
            result["capacity"] = {**capacity["live"], "load_before": load,
                                  "load_after": uptime()}
        if not args.no_mediapipe:
            load = uptime()
            stats, mp_weights = mediapipe_replay(video)
            result["mediapipe"] = {**stats, "load_before": load, "load_after": uptime()}
        if args.offline_root:
            reference = raw_arkit(os.path.join(args.offline_root, stem, "blendshapes.json"))
            live = raw_arkit(os.path.join(args.out, stem, "blendshapes.json"))
            lines = [json.loads(line) for line in
                     Path(args.out, stem, "blendshapes.jsonl").read_text().splitlines()[1:]]
            calibrated = [e["frame"] for e in lines if e.get("calibrated")]
            accuracy = {}
            for label, frames in (("all", None), ("after_calibration", calibrated)):
                mean, per_unit, count = mae(live, reference, frames)
                accuracy[label] = {"mae_mean": round(mean, 4), "frames": count,
                                   "worst_units": {ARKIT_NAMES[k]: round(float(per_unit[k]), 3)
                                                   for k in np.argsort(-per_unit)[:5]}}
            if args.no_capacity is False:
                cap = raw_arkit(os.path.join(args.out, stem + "_capacity", "blendshapes.json"))
                mean, _, count = mae(cap, reference)
                accuracy["capacity_run_all_frames"] = {"mae_mean": round(mean, 4),
                                                       "frames": count}
            if not args.no_mediapipe:
                mean, _, count = mae(mp_weights, reference)
                accuracy["mediapipe_vs_offline"] = {"mae_mean": round(mean, 4),
                                                    "frames": count}
            result["accuracy"] = accuracy
        print(json.dumps(result), flush=True)
        rows.append(result)
    Path(args.out, "results.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

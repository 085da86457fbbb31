"""Where a CPU train step's time goes: backbone forward+backward, the renderer forward+backward, the
perceptual network forward+backward, the rest of the objective, and the host's data pipeline.

    python benchmarks/train_step_profile.py --setups resnet18:128:0.5 resnet18:160:1.0 \
        mobilenet_v2:128:1.0 --clips 2 --frames 4 --repeats 5 [--data ../shared/data/cpem-demo] \
        [--perceptual-frames 0 1]

Each part is jitted on its own with the shapes of the full step (B clips x T frames) and timed
after a compiling call (median of `repeats`); the full train step is timed the same way, so the
parts can be compared with it (the parts overlap a little: each includes its own gradient). The
host part is the time `cpem_jax.data`'s pipeline takes to produce one batch (median over batches,
one worker) when --data is given. Results print as a Markdown table.
"""
import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np


def _median_seconds(fn, *args, repeats=5):
    jax.block_until_ready(fn(*args))  # Compile.
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def profile_setup(model, setup, clips, frames, repeats, embed_fn, perceptual_frames=(0,)):
    from cpem_jax.geometry.camera import crop_camera
    from cpem_jax.losses import TRAINING_WEIGHTS
    from cpem_jax.losses.perceptual import perceptual_loss
    from cpem_jax.networks.pe_net import PENet, init_pe_net
    from cpem_jax.render.face_renderer import render_face
    from cpem_jax.train.state import TrainState, make_optimizer
    from cpem_jax.train.step import make_train_step

    backbone, size, width = setup.split(":")
    size, width = int(size), float(width)
    n = clips * frames
    net = PENet(layout=model.layout(), backbone=backbone, width_scale=width)
    variables = init_pe_net(net, jax.random.PRNGKey(0), size)
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.uniform(0, 1, (n, size, size, 3)), jnp.float32)
    camera = crop_camera(size)
    out = {}

    def backbone_loss(params):
        coeffs, _ = net.apply({"params": params, "batch_stats": variables["batch_stats"]},
                              images, train=True, mutable=["batch_stats"])
        return sum(jnp.sum(x) for x in jax.tree_util.tree_leaves(coeffs))
    out["network fwd+bwd"] = _median_seconds(jax.jit(jax.grad(backbone_loss)),
                                             variables["params"], repeats=repeats)

    coeffs = net.apply(variables, images, train=False)

    def render_loss(c):
        rendered = render_face(model, c, camera, background=images)
        return jnp.mean((rendered.image - images) ** 2)
    out["render fwd+bwd"] = _median_seconds(jax.jit(jax.grad(render_loss)), coeffs,
                                            repeats=repeats)

    if embed_fn is not None:
        landmarks = jnp.asarray(rng.uniform(0.3 * size, 0.7 * size, (n, 68, 2)), jnp.float32)

        def per_loss(render):
            return perceptual_loss(images, render, landmarks, embed_fn)
        out["perceptual fwd+bwd"] = _median_seconds(jax.jit(jax.grad(per_loss)), images * 0.9,
                                                    repeats=repeats)

    state = TrainState.create(net.apply, variables, make_optimizer(1e-4))
    shape = (clips, frames)
    batch = {"image": np.asarray(images).reshape(shape + (size, size, 3)),
             "skin_mask": np.ones(shape + (size, size), np.float32),
             "landmarks": rng.uniform(0.3 * size, 0.7 * size, shape + (68, 2)).astype(
                 np.float32),
             "front_flag": np.ones(shape, bool)}
    for k in perceptual_frames:
        step = jax.jit(make_train_step(camera, TRAINING_WEIGHTS, 100, 2 / 3, render_face,
                                       embed_fn, perceptual_frames=k))
        name = "full train step" if k == perceptual_frames[0] else \
            f"full train step, L_per on {k} frame(s) per clip"
        out[name] = _median_seconds(lambda s, b: step(s, b, model)[1], state, batch,
                                    repeats=repeats)
    return out


def host_seconds(data_root, setup, clips, frames, batches=12):
    from configs import cpu
    from cpem_jax.data import pipeline
    from cpem_jax.train import inputs

    _, size, _ = setup.split(":")
    config = cpu.get_config()
    config.data.root, config.model.image_size = data_root, int(size)
    config.data.batch_clips, config.data.frames, config.data.workers = clips, frames, 0
    index = inputs.load_index(config)
    iterator = pipeline.make_iterator(index, inputs.make_pipeline_config(config, 0))
    next(iterator)
    times = []
    for _ in range(batches):
        t0 = time.perf_counter()
        next(iterator)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    import os
    import sys
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setups", nargs="+", default=["resnet18:128:0.5"],
                        help="backbone:image_size:width_scale")
    parser.add_argument("--clips", type=int, default=2)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data", help="a CPEM-layout folder, to time the host pipeline")
    parser.add_argument("--no-perceptual", action="store_true")
    parser.add_argument("--perceptual-frames", type=int, nargs="+", default=[0],
                        help="time the full step with L_per on k frames per clip (0 = all); "
                        "the first value is the reference")
    args = parser.parse_args()
    from cpem_jax.face_model import load_face_model
    model = load_face_model()
    embed_fn = None
    if not args.no_perceptual:
        from cpem_jax.recognition import perceptual_embed_fn
        embed_fn = perceptual_embed_fn()
    print(f"load average {os.getloadavg()}", flush=True)
    for setup in args.setups:
        parts = profile_setup(model, setup, args.clips, args.frames, args.repeats, embed_fn,
                              tuple(args.perceptual_frames))
        if args.data:
            parts["host: one batch"] = host_seconds(args.data, setup, args.clips, args.frames)
        full = parts["full train step"]
        print(f"\n{setup} (B={args.clips} x T={args.frames}), load {os.getloadavg()[0]:.2f}")
        print("| part | ms | share of the full step |")
        print("| --- | --- | --- |")
        for name, seconds in parts.items():
            print(f"| {name} | {1000 * seconds:.0f} | {100 * seconds / full:.0f} % |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()

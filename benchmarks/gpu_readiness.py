"""The paper configuration's train step compiled for a data-parallel mesh, with XLA's memory
estimate per device. Runs on CPU with fake devices; nothing is executed.

    python benchmarks/gpu_readiness.py --devices 2 --config configs/default.py \
        --out experiments/gpu_readiness/memory.json

The step is the one `cpem_jax.train.loop` jits: the global batch of B clips x T frames sharded
on the mesh's 'data' axis, the state replicated. XLA:CPU's `memory_analysis()` reports, per
device, the arguments (state + this device's batch), outputs, temporaries (activations kept for
the backward pass, gradients, optimiser updates) and generated code. A GPU compile schedules
differently (cuDNN workspaces, fusion), so this is an estimate of the order of magnitude.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--config", default="configs/default.py")
    parser.add_argument("--perceptual", choices=("dlib", "none"), default="dlib")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={args.devices}")
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import importlib.util

    import jax
    import jax.numpy as jnp

    from cpem_jax.face_model import load_face_model
    from cpem_jax.geometry.camera import crop_camera
    from cpem_jax.networks import pe_net_from_config
    from cpem_jax.render.face_renderer import render_face
    from cpem_jax.train import sharding
    from cpem_jax.train.loop import loss_weights, make_embed_fn
    from cpem_jax.train.state import (abstract_state, make_optimizer, state_initializer,
                                      state_shardings)
    from cpem_jax.train.step import make_train_step

    spec = importlib.util.spec_from_file_location("config_module", args.config)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(args.config))))
    spec.loader.exec_module(module)
    config = module.get_config()
    config.loss.perceptual_network = args.perceptual

    mesh = sharding.data_mesh()
    assert mesh.devices.size == args.devices, jax.devices()
    sharding.check_batch_divides(config.data.batch_clips, mesh)
    face_model = load_face_model(config.face_model or None)
    net = pe_net_from_config(config.model, face_model.layout())
    tx = make_optimizer(config.optim.learning_rate, config.optim.grad_clip_norm)
    init = state_initializer(net, tx, int(config.model.image_size))
    replicated = sharding.replicated(mesh)
    abstract = abstract_state(init, jax.random.PRNGKey(0), replicated)
    camera = crop_camera(config.model.image_size, config.camera.focal_per_pixel,
                         config.camera.distance_cm)
    step = make_train_step(camera, loss_weights(config), config.total_steps,
                           config.loss.exp_start_fraction, render_face, make_embed_fn(config),
                           perceptual_frames=int(config.loss.get("perceptual_frames", 0)))
    b, t, s = config.data.batch_clips, config.data.frames, config.model.image_size
    batched = sharding.batch_sharded(mesh)
    shape = lambda dims, dtype: jax.ShapeDtypeStruct(dims, dtype, sharding=batched)
    batch = {"image": shape((b, t, s, s, 3), jnp.float32),
             "skin_mask": shape((b, t, s, s), jnp.float32),
             "landmarks": shape((b, t, 68, 2), jnp.float32),
             "front_flag": shape((b, t), jnp.bool_)}
    model_abstract = jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), face_model)
    jitted = jax.jit(step, donate_argnums=(0,),
                     out_shardings=(state_shardings(abstract), replicated))
    t0 = time.perf_counter()
    lowered = jitted.lower(abstract, batch, model_abstract)
    compiled = lowered.compile()
    seconds = time.perf_counter() - t0
    memory = compiled.memory_analysis()
    fields = ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes",
              "alias_size_in_bytes", "generated_code_size_in_bytes")
    per_device = {f: int(getattr(memory, f)) for f in fields if hasattr(memory, f)}
    n_params = sum(x.size for x in jax.tree_util.tree_leaves(abstract.params))
    total = (per_device.get("argument_size_in_bytes", 0) + per_device.get("output_size_in_bytes", 0)
             + per_device.get("temp_size_in_bytes", 0) - per_device.get("alias_size_in_bytes", 0))
    result = {
        "config": args.config, "devices": args.devices, "backbone": config.model.backbone,
        "image_size": s, "global_batch": f"{b} clips x {t} frames",
        "per_device_batch": f"{b // args.devices} clips x {t} frames",
        "perceptual_network": args.perceptual, "parameters": int(n_params),
        "memory_per_device_bytes": per_device,
        "estimated_peak_per_device_gib": round(total / 2**30, 2),
        "lower_and_compile_seconds": round(seconds, 1), "jax": jax.__version__,
        "load_average": os.getloadavg()[0],
    }
    print(json.dumps(result, indent=1))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

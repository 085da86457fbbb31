"""A CPU-sized run on the demo data: trains in minutes on 2 cores.

    python -m cpem_jax.main --config=configs/cpu.py --workdir=runs/cpu \
        --config.data.root=../shared/data/cpem-demo

Light ResNet-18 at 128x128, 2 clips x 4 frames, 600 steps; the losses and their weights are the
paper's, L_exp in the last third.
"""
from configs import default


def get_config():
    c = default.get_config()
    c.model.backbone = "resnet18"
    c.model.width_scale = 0.5
    c.model.image_size = 128
    c.data.batch_clips = 2
    c.data.frames = 4
    c.data.workers = 1
    c.optim.learning_rate = 3e-4
    c.total_steps = 600
    c.log_every = 10
    c.image_every = 100
    c.checkpoint_every = 100
    c.eval_every = 50
    c.eval_batches = 10
    return c

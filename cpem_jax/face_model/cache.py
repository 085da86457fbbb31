"""The converted, fast-loading face-model file (.npz) and its exact round trip."""
from __future__ import annotations

import os
import zipfile

import numpy as np

from cpem_jax.face_model.model import FaceModel, as_numpy_dict

FORMAT_VERSION = 1
REGION_PREFIX = "region/"
_ARRAY_FIELDS = ("mean_shape", "id_basis", "exp_basis", "albedo_mean", "albedo_basis",
                 "triangles", "landmark_ids", "contradictory_pairs")


class ModelCacheError(ValueError):
    """A converted model file that is missing, unreadable or incomplete."""


def save_model(model: FaceModel, path: str) -> str:
    """Writes the model as an uncompressed .npz (fast to load); returns the path written."""
    if not path.endswith(".npz"):
        path += ".npz"
    arrays = as_numpy_dict(model)
    arrays["format_version"] = np.asarray(FORMAT_VERSION)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp.npz"       # Per process: two writers never share it.
    np.savez(tmp, **arrays)
    os.replace(tmp, path)  # Never leave a half-written cache behind.
    return path


def load_model(path: str) -> FaceModel:
    """Reads a model written by `save_model`."""
    if not os.path.isfile(path):
        raise ModelCacheError(f"face-model file {path!r} does not exist; create it with "
                              f"`cpem-jax model convert SOURCE -o {path}`")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ModelCacheError(f"{path!r} is not a readable face-model .npz (damaged, truncated "
                              f"or another kind of file: {type(err).__name__}); convert the "
                              f"model again with `cpem-jax model convert`") from None
    missing = [k for k in _ARRAY_FIELDS + ("expression_names", "name", "format_version")
               if k not in arrays]
    if missing:
        raise ModelCacheError(f"{path!r} lacks {missing}; it was not written by "
                              f"`cpem-jax model convert` (or by an older version): convert again")
    if int(arrays["format_version"]) != FORMAT_VERSION:
        raise ModelCacheError(f"{path!r} has format version {int(arrays['format_version'])}, this "
                              f"cpem-jax reads {FORMAT_VERSION}: convert the model again")
    regions = {k[len(REGION_PREFIX):]: arrays[k] for k in arrays if k.startswith(REGION_PREFIX)}
    return FaceModel(**{k: arrays[k] for k in _ARRAY_FIELDS}, regions=regions,
                     expression_names=tuple(str(n) for n in arrays["expression_names"]),
                     name=str(arrays["name"]))

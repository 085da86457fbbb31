"""One way to say which face model to use everywhere: a flag, an environment variable, a cache.

Resolution order for `load_face_model(spec)`:
  1. `spec` (the `--face-model` flag of every command), else
  2. the environment variable CPEM_FACE_MODEL, else
  3. the ICT-FaceKit archive at $CPEM_ICT_FACEKIT or ../shared/assets beside the repository.
A spec is a converted `.npz` (`cpem-jax model convert`), or an ICT-FaceKit archive or folder,
which is converted once and cached in $CPEM_CACHE (default ~/.cache/cpem_jax).
"""
from __future__ import annotations

import hashlib
import logging
import os
from typing import Optional

from cpem_jax.face_model import cache, ict
from cpem_jax.face_model.model import FaceModel

ENV_MODEL = "CPEM_FACE_MODEL"
ENV_CACHE = "CPEM_CACHE"


class FaceModelNotFound(FileNotFoundError):
    """No face model could be located."""


def cache_dir() -> str:
    return os.environ.get(ENV_CACHE) or os.path.join(os.path.expanduser("~"), ".cache",
                                                      "cpem_jax")


def _cache_path(source: str, area: str) -> str:
    stat = os.stat(source)
    key = f"{os.path.abspath(source)}|{stat.st_size}|{stat.st_mtime_ns}|{area}|v{cache.FORMAT_VERSION}"
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    return os.path.join(cache_dir(), f"ict-facekit-{area}-{digest}.npz")


def resolve_spec(spec: Optional[str] = None) -> str:
    """The path the model comes from (see module docstring), or a clear error."""
    spec = spec or os.environ.get(ENV_MODEL) or ict.default_ict_path()
    if not spec:
        raise FaceModelNotFound(
            "no face model given: pass --face-model PATH (a .npz from `cpem-jax model convert`, "
            "or ICT-FaceKit-master.zip), or set CPEM_FACE_MODEL; `cpem-jax model fetch-ict` "
            "downloads ICT-FaceKit where there is internet")
    if not os.path.exists(spec):
        raise FaceModelNotFound(f"face model {spec!r} does not exist (from --face-model or "
                                f"{ENV_MODEL}); convert one with `cpem-jax model convert`")
    return spec


def load_face_model(spec: Optional[str] = None, area: str = "narrow") -> FaceModel:
    """Loads the face model named by `spec`, the environment or the default (see module doc)."""
    path = resolve_spec(spec)
    if path.endswith(".npz"):
        return cache.load_model(path)
    if path.endswith(".mat"):
        raise ValueError(f"{path!r} is a BFM .mat: convert it with its expression basis first, "
                         f"`cpem-jax model convert --bfm {path} --bfm-expression EXP -o bfm.npz`")
    cached = _cache_path(path, area)
    if os.path.exists(cached):
        try:
            return cache.load_model(cached)
        except cache.ModelCacheError as err:
            logging.warning("ignoring a bad cached model (%s); converting again", err)
    model = ict.load_ict(path, area=area)
    try:
        cache.save_model(model, cached)
    except OSError as err:  # A read-only home must not stop the run.
        logging.warning("could not write the model cache %s (%s)", cached, err)
    return model

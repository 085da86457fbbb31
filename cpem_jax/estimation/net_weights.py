"""Trained network weights as one portable file: export from a training run, load for `--method
net`, and the weights shipped with the package.

    export_weights("runs/light", "pe_net.msgpack")      # + pe_net.json beside it
    predictor = load_weights("pe_net.msgpack")           # a NetPredictor
    predictor = load_weights(shipped_weights_path())     # what `--method net` uses by default

A weights file is the network's {'params', 'batch_stats'} serialised with flax's msgpack, in
float16 (half the size; the network runs in float32 after loading). Its sidecar `.json` holds
what is needed to rebuild the network (the training config), the face model and unit names the
heads were trained for, the training step, the file's sha256, and free-form provenance (the
command and commit that produced it).
"""
from __future__ import annotations

import datetime
import json
import os
from typing import Any, Dict, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import serialization

from cpem_jax.estimation.network import CheckpointError, NetPredictor
from cpem_jax.face_model import load_face_model
from cpem_jax.io.checksum import file_sha256
from cpem_jax.networks.pe_net import init_pe_net, pe_net_from_config

SCHEMA_VERSION = "1.0"
SHIPPED_NAME = "pe_net_light.msgpack"


def shipped_weights_path() -> str:
    """The weights shipped in the package (`cpem_jax/estimation/weights/`)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights", SHIPPED_NAME)


def sidecar_path(path: str) -> str:
    return os.path.splitext(path)[0] + ".json"


def export_weights(workdir: str, out_path: str, provenance: Optional[Dict[str, Any]] = None,
                   face_model: Optional[str] = None) -> Dict[str, Any]:
    """Writes the latest checkpoint of `workdir` as `out_path` (float16 msgpack) and its sidecar.

    Returns the sidecar dict. Raises CheckpointError when the workdir has no checkpoint.
    """
    predictor = NetPredictor.from_workdir(workdir, face_model)
    half = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float16), predictor.variables)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    tmp = out_path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(serialization.msgpack_serialize(half))
    os.replace(tmp, out_path)
    meta = {
        "schema_version": SCHEMA_VERSION, "format": "flax msgpack, float16",
        "config": predictor.config.to_dict(), "step": predictor.step,
        "face_model": predictor.model.name,
        "unit_names": list(predictor.model.expression_names),
        "parameters": int(sum(np.size(x) for x in jax.tree_util.tree_leaves(half))),
        "bytes": os.path.getsize(out_path), "sha256": file_sha256(out_path),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "provenance": dict(provenance or {}),
    }
    with open(sidecar_path(out_path), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
    return meta


def load_weights(path: str, face_model: Optional[str] = None) -> NetPredictor:
    """A NetPredictor from a weights file and its sidecar.

    Raises:
      CheckpointError (one line naming the fix): a missing or corrupt file, or a face model
      whose units differ from the ones the network was trained for.
    """
    meta_path = sidecar_path(path)
    if not os.path.isfile(path) or not os.path.isfile(meta_path):
        raise CheckpointError(f"network weights {path!r} (and its {os.path.basename(meta_path)})"
                              f" not found; pass --checkpoint with a training workdir or a "
                              f"weights file written by `cpem-jax model export-net`")
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
        config = ml_collections.ConfigDict(meta["config"])
    except (OSError, ValueError, KeyError) as err:
        raise CheckpointError(f"{meta_path} is not a weights sidecar ({err}); export the "
                              f"weights again") from err
    if meta.get("sha256") and meta["sha256"] != file_sha256(path):
        raise CheckpointError(f"{path} does not match the sha256 in {meta_path}: the file is "
                              f"damaged or was replaced; export or download it again")
    model = load_face_model(face_model or config.get("face_model") or None)
    if list(model.expression_names) != list(meta.get("unit_names", model.expression_names)):
        raise CheckpointError(f"{path} was trained for the face model {meta.get('face_model')!r}"
                              f" with other expression units than {model.name!r}; pass that "
                              f"model with --face-model")
    net = pe_net_from_config(config.model, model.layout())
    template = jax.eval_shape(lambda: init_pe_net(net, jax.random.PRNGKey(0),
                                                  int(config.model.image_size)))
    template = {"params": template["params"], "batch_stats": template.get("batch_stats", {})}
    try:
        with open(path, "rb") as f:
            restored = serialization.from_bytes(template, f.read())
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{path} does not hold this network's weights ({err}); export "
                              f"them again") from err
    variables = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32), restored)
    return NetPredictor(config, model, variables, int(meta.get("step", 0)))

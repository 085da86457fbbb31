"""Loads torchvision ImageNet weights a user brings into a Flax backbone.

ImageNet weights cannot be downloaded by this project; a user who has them (for example
`torchvision.models.resnet50(weights="IMAGENET1K_V1").state_dict()`) saves them as `.pth` (needs
torch installed to read) or as `.npz` (no torch needed:
`np.savez(path, **{k: v.numpy() for k, v in state_dict.items()})`) and passes the file here.

Conversion is driven by the Flax variables, not by a fixed name list: every Flax leaf names its
torchvision key (the module path joined by '.', each '_' in a module name read as '.', e.g.
`layer2_0/downsample_0/kernel` <- `layer2.0.downsample.0.weight`), so the same code serves
ResNet-18/50 and MobileNet-V2 at any width. Layout changes:

    conv weight  [out, in/groups, kh, kw]  ->  kernel [kh, kw, in/groups, out]
    linear weight [out, in]                ->  kernel [in, out]
    bn weight / bias                       ->  scale / bias             (params)
    bn running_mean / running_var          ->  mean / var               (batch_stats)

Keys the network does not use (`fc.*`, `classifier.*`, `num_batches_tracked`) are ignored;
a `module.` prefix (DataParallel checkpoints) is stripped.
"""
from __future__ import annotations

import os
from typing import Dict, Mapping, Tuple

import numpy as np
from flax import traverse_util

StateDict = Dict[str, np.ndarray]

_PARAM_LEAVES = {"kernel": "weight", "scale": "weight", "bias": "bias"}
_STAT_LEAVES = {"mean": "running_mean", "var": "running_var"}


class ConversionError(ValueError):
    """A state dict that does not fit the Flax network (missing keys or wrong shapes)."""


def load_state_dict(path: str) -> StateDict:
    """Reads a torchvision state dict from `.npz` (numpy only) or `.pth`/`.pt` (needs torch).

    Returns name -> numpy array (float32 for floating tensors).
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"no weight file at {path!r}; pass the path of a torchvision "
                                f"state dict saved as .npz or .pth")
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            raw = {name: np.asarray(data[name]) for name in data.files}
    elif suffix in (".pth", ".pt"):
        try:
            import torch  # noqa: PLC0415 - optional dependency, only for .pth files
        except ImportError:
            raise ImportError(
                f"reading {path!r} needs torch, which is not installed; either `pip install "
                f"torch` or convert the file once elsewhere with `np.savez(out, **{{k: "
                f"v.numpy() for k, v in torch.load(path).items()}})` and pass the .npz"
            ) from None
        loaded = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(loaded, Mapping) and "state_dict" in loaded:
            loaded = loaded["state_dict"]
        raw = {name: tensor.detach().cpu().numpy() for name, tensor in loaded.items()}
    else:
        raise ValueError(f"unsupported weight file {path!r}: use a .npz or .pth state dict")
    return {_strip_prefix(name): (value.astype(np.float32)
                                  if np.issubdtype(value.dtype, np.floating) else value)
            for name, value in raw.items()}


def _strip_prefix(name: str) -> str:
    return name[len("module."):] if name.startswith("module.") else name


def torch_name(flax_path: Tuple[str, ...], collection: str) -> str:
    """Flax leaf path (module names..., leaf) in `collection` -> torchvision state-dict key."""
    *modules, leaf = flax_path
    table = _PARAM_LEAVES if collection == "params" else _STAT_LEAVES
    if leaf not in table:
        raise ConversionError(f"no torchvision counterpart for Flax leaf {'/'.join(flax_path)} "
                              f"in {collection!r}")
    return ".".join([m.replace("_", ".") for m in modules] + [table[leaf]])


def _to_flax_layout(name: str, value: np.ndarray, leaf: str, flax_shape: Tuple[int, ...]):
    if leaf == "kernel" and value.ndim == 4:
        value = value.transpose(2, 3, 1, 0)
    elif leaf == "kernel" and value.ndim == 2:
        value = value.transpose(1, 0)
    if tuple(value.shape) != tuple(flax_shape):
        raise ConversionError(
            f"shape mismatch for {name!r}: file gives {tuple(value.shape)} (Flax layout), the "
            f"network expects {tuple(flax_shape)}; check that the backbone name and width "
            f"(width_scale=1.0 for ImageNet weights) match the file")
    return np.asarray(value, np.float32)


def convert_state_dict(state_dict: Mapping[str, np.ndarray], template: Mapping) -> dict:
    """Maps a torchvision state dict onto a Flax backbone's variables.

    Args:
      state_dict: torchvision name -> array (see `load_state_dict`).
      template: the backbone's Flax variables `{'params': ..., 'batch_stats': ...}` (real arrays
        or `jax.ShapeDtypeStruct`s from `jax.eval_shape`); only their tree and shapes are used.

    Returns:
      `{'params': ..., 'batch_stats': ...}` nested dicts of float32 numpy arrays, same tree as
      `template`.

    Raises:
      ConversionError naming every missing key, or the first key with a wrong shape.
    """
    state = {_strip_prefix(k): np.asarray(v) for k, v in state_dict.items()}
    out = {}
    missing = []
    for collection in ("params", "batch_stats"):
        if collection not in template:
            continue
        flat = traverse_util.flatten_dict(dict(template[collection]))
        converted = {}
        for path, leaf_value in flat.items():
            name = torch_name(path, collection)
            if name not in state:
                missing.append(name)
                continue
            converted[path] = _to_flax_layout(name, state[name], path[-1], leaf_value.shape)
        out[collection] = traverse_util.unflatten_dict(converted)
    if missing:
        shown = ", ".join(missing[:8]) + (f", ... ({len(missing)} in all)" if len(missing) > 8
                                          else "")
        raise ConversionError(
            f"the state dict lacks {len(missing)} key(s) the network needs: {shown}. Use a "
            f"torchvision state dict of the same architecture as the chosen backbone (e.g. "
            f"resnet50 weights for backbone='resnet50'), saved with its original key names")
    return out


def required_torch_names(template: Mapping) -> Dict[str, Tuple[int, ...]]:
    """torchvision key -> Flax-layout shape that a backbone template needs (for checks/docs)."""
    names = {}
    for collection in ("params", "batch_stats"):
        for path, leaf in traverse_util.flatten_dict(dict(template.get(collection, {}))).items():
            names[torch_name(path, collection)] = tuple(leaf.shape)
    return names


def load_into_pe_net(variables: Mapping, path_or_state_dict, scope: str = "backbone") -> dict:
    """Returns PE-Net `variables` with the backbone replaced by converted torchvision weights.

    Args:
      variables: PE-Net variables `{'params': {'backbone': ..., 'heads': ...}, 'batch_stats':
        {'backbone': ...}}` (from `init_pe_net`).
      path_or_state_dict: a `.npz`/`.pth` path or an already loaded state dict.
      scope: name of the backbone submodule.

    The heads are left as initialised (the ImageNet classifier is not used).
    """
    state = (load_state_dict(path_or_state_dict) if isinstance(path_or_state_dict, str)
             else path_or_state_dict)
    template = {c: variables[c][scope] for c in ("params", "batch_stats")
                if c in variables and scope in variables[c]}
    if "params" not in template:
        raise ConversionError(f"variables have no params/{scope}; pass PE-Net variables from "
                              f"init_pe_net")
    converted = convert_state_dict(state, template)
    result = {c: dict(v) for c, v in variables.items()}
    for collection, tree in converted.items():
        result[collection][scope] = tree
    return result

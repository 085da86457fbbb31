"""The linear morphable face model as one frozen pytree.

A `FaceModel` holds every array a 3DMM needs; the coefficients that drive it live in a
`Coefficients` pytree whose fields are the named coefficient groups. Nothing in the project
slices a flat coefficient vector by hand: `CoeffLayout` turns a flat vector (a network output)
into `Coefficients` by group name and size.

Units: model space is centimetres for ICT-FaceKit (BFM09 uses its own units, converted to cm by
its loader), +y up, the face looks toward +z.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, Iterator, Tuple

import flax.struct
import jax.numpy as jnp
import numpy as np

# The named coefficient groups, in the order a flat vector stores them.
COEFF_GROUPS: Tuple[str, ...] = (
    "identity", "expression", "albedo", "lighting", "rotation", "translation")
SH_COEFFS_PER_CHANNEL = 9
N_LIGHTING = 3 * SH_COEFFS_PER_CHANNEL
N_ROTATION = 3
N_TRANSLATION = 3


@flax.struct.dataclass
class FaceModel:
    """A linear 3DMM (all arrays float32 unless said otherwise).

    Attributes:
      mean_shape: [V, 3] neutral mean shape, cm.
      id_basis: [V, 3, K_id] identity basis; weights are meant to be ~N(0, 1) (see `id_scale_note`).
      exp_basis: [V, 3, K_exp] expression deltas from the neutral, weights in [0, 1].
      albedo_mean: [V, 3] mean albedo, linear RGB in [0, 1].
      albedo_basis: [V, 3, K_alb] albedo basis, weights ~N(0, 1).
      triangles: [F, 3] int32 vertex ids, counter-clockwise seen from outside (front).
      landmark_ids: [68] int32 vertex ids in iBUG/Multi-PIE 68 order.
      regions: name -> [V] bool masks (e.g. "skin", "eyes", "mouth", "nose").
      expression_names: K_exp unit names (static).
      contradictory_pairs: [P, 2] int32 pairs of expression indices that may not both fire.
      name: a short identifier such as "ict-facekit" (static).
    """
    mean_shape: jnp.ndarray
    id_basis: jnp.ndarray
    exp_basis: jnp.ndarray
    albedo_mean: jnp.ndarray
    albedo_basis: jnp.ndarray
    triangles: jnp.ndarray
    landmark_ids: jnp.ndarray
    contradictory_pairs: jnp.ndarray
    regions: Dict[str, jnp.ndarray]
    expression_names: Tuple[str, ...] = flax.struct.field(pytree_node=False, default=())
    name: str = flax.struct.field(pytree_node=False, default="face-model")

    @property
    def n_vertices(self) -> int:
        return int(self.mean_shape.shape[0])

    @property
    def n_triangles(self) -> int:
        return int(self.triangles.shape[0])

    @property
    def n_identity(self) -> int:
        return int(self.id_basis.shape[-1])

    @property
    def n_expression(self) -> int:
        return int(self.exp_basis.shape[-1])

    @property
    def n_albedo(self) -> int:
        return int(self.albedo_basis.shape[-1])

    def layout(self) -> "CoeffLayout":
        """The flat coefficient layout that drives this model."""
        return CoeffLayout(identity=self.n_identity, expression=self.n_expression,
                           albedo=self.n_albedo)

    def expression_index(self, name: str) -> int:
        """Index of an expression unit by name; a clear error lists the known names."""
        try:
            return self.expression_names.index(name)
        except ValueError:
            raise KeyError(
                f"unknown expression unit {name!r} for face model {self.name!r}; "
                f"known units: {', '.join(self.expression_names)}") from None


@flax.struct.dataclass
class Coefficients:
    """Per-face coefficients, each with any leading batch shape [...].

    Attributes:
      identity: [..., K_id] identity weights (~N(0, 1)).
      expression: [..., K_exp] expression weights in [0, 1].
      albedo: [..., K_alb] albedo weights (~N(0, 1)).
      lighting: [..., 3, 9] SH coefficients per colour channel (R, G, B), 3 bands.
      rotation: [..., 3] Euler angles in radians (pitch about x, yaw about y, roll about z).
      translation: [..., 3] model-to-camera translation, cm.
    """
    identity: jnp.ndarray
    expression: jnp.ndarray
    albedo: jnp.ndarray
    lighting: jnp.ndarray
    rotation: jnp.ndarray
    translation: jnp.ndarray


@dataclasses.dataclass(frozen=True)
class CoeffLayout:
    """Sizes of the named coefficient groups in a flat vector (order: COEFF_GROUPS)."""
    identity: int
    expression: int
    albedo: int
    lighting: int = N_LIGHTING
    rotation: int = N_ROTATION
    translation: int = N_TRANSLATION

    def sizes(self) -> Dict[str, int]:
        return {g: getattr(self, g) for g in COEFF_GROUPS}

    @property
    def total(self) -> int:
        return sum(self.sizes().values())

    def spans(self) -> Iterator[Tuple[str, int, int]]:
        """Yields (group, start, stop) for each group of the flat vector."""
        start = 0
        for group, size in self.sizes().items():
            yield group, start, start + size
            start += size

    def split(self, flat: jnp.ndarray) -> Coefficients:
        """flat [..., total] -> Coefficients (lighting reshaped to [..., 3, 9])."""
        if flat.shape[-1] != self.total:
            raise ValueError(f"coefficient vector has {flat.shape[-1]} entries, layout expects "
                             f"{self.total} ({self.sizes()})")
        parts = {g: flat[..., a:b] for g, a, b in self.spans()}
        parts["lighting"] = parts["lighting"].reshape(
            flat.shape[:-1] + (3, SH_COEFFS_PER_CHANNEL))
        return Coefficients(**parts)

    def join(self, coeffs: Coefficients) -> jnp.ndarray:
        """Coefficients -> flat [..., total]."""
        parts = []
        for group in COEFF_GROUPS:
            value = getattr(coeffs, group)
            if group == "lighting":
                value = value.reshape(value.shape[:-2] + (N_LIGHTING,))
            parts.append(value)
        return jnp.concatenate(parts, axis=-1)

    def zeros(self, batch_shape: Tuple[int, ...] = ()) -> Coefficients:
        """All-zero coefficients with the given leading batch shape."""
        return self.split(jnp.zeros(batch_shape + (self.total,), jnp.float32))


def as_numpy_dict(model: FaceModel) -> Dict[str, np.ndarray]:
    """Flattens a model into named numpy arrays (the .npz cache layout)."""
    out = {f.name: np.asarray(getattr(model, f.name)) for f in dataclasses.fields(model)
           if f.name not in ("regions", "expression_names", "name")}
    for region, mask in model.regions.items():
        out[f"region/{region}"] = np.asarray(mask)
    out["expression_names"] = np.asarray(model.expression_names, dtype=np.str_)
    out["name"] = np.asarray(model.name, dtype=np.str_)
    return out

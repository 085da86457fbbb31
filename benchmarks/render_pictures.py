"""Saves renders of the ICT face for a few expressions and poses as one PNG grid.

Usage:
  python3 benchmarks/render_pictures.py [--out experiments/renderer/faces.png] [--size 224]

Rows: neutral, jawOpen + eyeBlink, mouthSmile + browInnerUp, mouthPucker + eyeWide (the first
four expressions found in the model, by ARKit/ICT name); columns: yaw -35, 0, +35 degrees and a
pitched/rolled view; the last column is the antialiased render mask of the frontal view, and the
68 projected landmarks are drawn as dots on the frontal view.
The face model comes from `cpem_jax.face_model.registry.load_face_model` (CPEM_FACE_MODEL, or
the ICT-FaceKit archive under $CPEM_SHARED/assets or ../shared/assets).
"""
from __future__ import annotations

import argparse
import os

import imageio.v2 as imageio
import jax
import jax.numpy as jnp
import numpy as np

from cpem_jax.face_model.registry import load_face_model
from cpem_jax.geometry.camera import default_camera
from cpem_jax.geometry.shading import ambient_lighting
from cpem_jax.render.antialias import edge_neighbors
from cpem_jax.render.face_renderer import render_face

EXPRESSIONS = (
    {},
    {"jawOpen": 0.8, "eyeBlink_L": 1.0, "eyeBlink_R": 1.0},
    {"mouthSmile_L": 1.0, "mouthSmile_R": 1.0, "browInnerUp_L": 0.8, "browInnerUp_R": 0.8},
    {"mouthPucker": 1.0, "eyeWide_L": 1.0, "eyeWide_R": 1.0, "browOuterUp_L": 0.7,
     "browOuterUp_R": 0.7},
)
POSES_DEG = ((0.0, -35.0, 0.0), (0.0, 0.0, 0.0), (0.0, 35.0, 0.0), (15.0, 15.0, 10.0))


def expression_vector(model, weights):
    vector = np.zeros(model.n_expression, np.float32)
    for name, value in weights.items():
        if name in model.expression_names:
            vector[model.expression_names.index(name)] = value
    return vector


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join("experiments", "renderer", "faces.png"))
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    model = load_face_model()
    camera = default_camera(args.size)
    neighbors = edge_neighbors(np.asarray(model.triangles))
    rows, cols = len(EXPRESSIONS), len(POSES_DEG)
    batch = rows * cols
    coeffs = model.layout().zeros((batch,))
    expression = np.stack([expression_vector(model, e) for e in EXPRESSIONS for _ in POSES_DEG])
    rotation = np.deg2rad(np.array([p for _ in EXPRESSIONS for p in POSES_DEG], np.float32))
    lighting = ambient_lighting(0.65, (batch,)).at[..., 2].set(0.3).at[..., 1].set(-0.15)
    coeffs = coeffs.replace(expression=jnp.asarray(expression), rotation=jnp.asarray(rotation),
                            lighting=lighting)
    out = jax.jit(lambda c: render_face(model, c, camera, neighbors=neighbors))(coeffs)
    images = np.clip(np.asarray(out.image), 0, 1)
    landmarks = np.asarray(out.landmarks)
    masks = np.asarray(out.mask)
    size = args.size
    grid = np.zeros((rows * size, (cols + 1) * size, 3), np.float32)
    frontal = POSES_DEG.index((0.0, 0.0, 0.0))
    for r in range(rows):
        for c in range(cols):
            tile = images[r * cols + c].copy()
            if c == frontal:
                for u, v in landmarks[r * cols + c]:
                    x, y = int(u), int(v)
                    tile[max(y - 1, 0):y + 1, max(x - 1, 0):x + 1] = (0.1, 1.0, 0.1)
            grid[r * size:(r + 1) * size, c * size:(c + 1) * size] = tile
        grid[r * size:(r + 1) * size, cols * size:] = masks[r * cols + frontal][..., None]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    imageio.imwrite(args.out, np.round(grid * 255).astype(np.uint8))
    print(f"wrote {args.out} ({rows} expressions x {cols} poses + mask column)")


if __name__ == "__main__":
    main()

"""A low-dimensional albedo model for meshes that ship none (ICT-FaceKit).

Choice: a constant mean skin albedo plus a smooth basis built on the mesh. The spatial modes are
the lowest eigenvectors of the mesh's graph Laplacian (the constant mode first, then ever finer
smooth variations over the surface), one copy per colour channel, scaled so that N(0, 1) weights
change the albedo by about `mode_scale` (RMS over the mesh). The constant modes let a fit match the
skin tone and the white balance; the smooth modes let it follow slow variations (redder cheeks,
darker jaw, shading the lighting model missed).

Limits: this is not a statistical model of human skin. It has no lips, brows, beard or make-up
texture (those are sharp, and the smooth modes cannot form them), its weights have no learned
prior, and per-channel modes can produce unnatural hues when pushed far, so keep the
regularisation on. A basis learned from real images can replace it through the same fields of
FaceModel (albedo_mean, albedo_basis).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

# Linear RGB of a mid-tone skin, about what Deep3DFaceRecon's BFM mean albedo averages to.
DEFAULT_SKIN_ALBEDO = (0.62, 0.45, 0.37)


def graph_laplacian(n_vertices: int, triangles: np.ndarray) -> scipy.sparse.csr_matrix:
    """Combinatorial Laplacian L = D - A [V, V] of the mesh edge graph."""
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    edges = np.concatenate([edges, edges[:, ::-1]])
    adjacency = scipy.sparse.coo_matrix(
        (np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n_vertices, n_vertices)).tocsr()
    adjacency.data[:] = 1.0  # Shared edges counted once.
    degree = scipy.sparse.diags(np.asarray(adjacency.sum(axis=1)).ravel())
    return (degree - adjacency).tocsr()


def smooth_modes(n_vertices: int, triangles: np.ndarray, n_modes: int) -> np.ndarray:
    """The n_modes lowest Laplacian eigenvectors [V, n_modes], unit RMS, deterministic sign."""
    if n_modes < 1:
        raise ValueError(f"n_modes must be >= 1, got {n_modes}")
    lap = graph_laplacian(n_vertices, triangles)
    # Shift-invert around a small negative value: fast and stable for the smallest eigenvalues.
    vals, vecs = scipy.sparse.linalg.eigsh(lap.astype(np.float64), k=n_modes, sigma=-1e-3,
                                           which="LM", v0=np.ones(n_vertices))
    vecs = vecs[:, np.argsort(vals)]
    vecs /= np.sqrt(np.mean(vecs ** 2, axis=0, keepdims=True))
    signs = np.sign(vecs[np.argmax(np.abs(vecs), axis=0), np.arange(n_modes)])
    return (vecs * signs).astype(np.float32)


def smooth_albedo_model(n_vertices: int, triangles: np.ndarray, n_spatial_modes: int = 10,
                        mode_scale: float = 0.06,
                        skin_albedo=DEFAULT_SKIN_ALBEDO):
    """Mean albedo [V, 3] and basis [V, 3, 3 * n_spatial_modes] (mode-major, then R, G, B)."""
    modes = smooth_modes(n_vertices, triangles, n_spatial_modes) * mode_scale  # [V, M]
    basis = np.zeros((n_vertices, 3, 3 * n_spatial_modes), np.float32)
    for m in range(n_spatial_modes):
        for channel in range(3):
            basis[:, channel, 3 * m + channel] = modes[:, m]
    mean = np.broadcast_to(np.asarray(skin_albedo, np.float32), (n_vertices, 3)).copy()
    return mean, basis

"""The chain from coefficients to a posed, shaded, projected face (no rasterization)."""
import flax.struct
import jax.numpy as jnp

from cpem_jax.face_model.model import Coefficients, FaceModel
from cpem_jax.geometry.camera import Camera, project, transform
from cpem_jax.geometry.mesh import vertex_normals
from cpem_jax.geometry.rotation import euler_to_matrix
from cpem_jax.geometry.shading import sh_shade
from cpem_jax.geometry.shape import face_albedo, face_shape, landmarks_3d


@flax.struct.dataclass
class FaceGeometry:
    """A posed face, per vertex, with any leading batch shape [...].

    Attributes:
      vertices_cam: [..., V, 3] camera space, cm.
      normals_cam: [..., V, 3] unit normals in camera space.
      colors: [..., V, 3] shaded linear RGB (albedo times SH irradiance).
      uv: [..., V, 2] pixels.
      depth: [..., V] cm in front of the camera.
      landmarks_uv: [..., 68, 2] projected landmarks, pixels.
    """
    vertices_cam: jnp.ndarray
    normals_cam: jnp.ndarray
    colors: jnp.ndarray
    uv: jnp.ndarray
    depth: jnp.ndarray
    landmarks_uv: jnp.ndarray


def face_geometry(model: FaceModel, coeffs: Coefficients, camera: Camera) -> FaceGeometry:
    """Shape, pose, shading (lighting is expressed in camera space) and projection."""
    vertices = face_shape(model, coeffs)
    rot = euler_to_matrix(coeffs.rotation)
    vertices_cam = transform(vertices, rot, coeffs.translation, camera)
    normals_cam = vertex_normals(vertices_cam, model.triangles)
    colors = sh_shade(normals_cam, face_albedo(model, coeffs), coeffs.lighting)
    uv, depth = project(camera, vertices_cam)
    return FaceGeometry(vertices_cam=vertices_cam, normals_cam=normals_cam, colors=colors, uv=uv,
                        depth=depth, landmarks_uv=landmarks_3d(model, uv))


def project_landmarks(model: FaceModel, coeffs: Coefficients, camera: Camera,
                      ids=None) -> jnp.ndarray:
    """The 68 projected landmarks [..., 68, 2] in pixels, without shading the whole mesh; `ids`
    ([L] vertex ids, default the model's `landmark_ids`) projects other vertices -> [..., L, 2]."""
    ids = model.landmark_ids if ids is None else jnp.asarray(ids)
    vertices = (model.mean_shape[ids]
                + jnp.einsum("lck,...k->...lc", model.id_basis[ids], coeffs.identity)
                + jnp.einsum("lck,...k->...lc", model.exp_basis[ids], coeffs.expression))
    vertices_cam = transform(vertices, euler_to_matrix(coeffs.rotation), coeffs.translation, camera)
    return project(camera, vertices_cam)[0]

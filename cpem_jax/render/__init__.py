"""Differentiable rasterization in pure jnp (nvdiffrast-style primitives) and the face render.

Modules (import the functions from them; the package re-exports nothing, so that the module
`cpem_jax.render.rasterize` is never shadowed by the function of the same name):
  rasterize      rasterize(verts, triangles, (H, W)) -> Fragments (triangle id, perspective-correct
                 barycentrics, depth per pixel)
  interpolate    interpolate(attributes, fragments, triangles) -> per-pixel attributes
  antialias      antialias(color, fragments, verts, triangles) -> silhouette gradients;
                 edge_neighbors(triangles)
  face_renderer  render_face(model, coefficients, camera) -> image, mask, depth, landmarks
"""

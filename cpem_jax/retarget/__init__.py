"""`cpem-jax retarget`: a video (or images, or a webcam) -> ARKit/Live Link/glTF/avatar outputs.

Modules:
  estimate    runs the estimator (`--method fit` per-video fitting or `--method net`) -> VideoFit
  webcam      captures a webcam to a temporary video before it is processed as a file
  gltf_mesh   reads a glTF avatar's triangles and morph targets into one MorphMesh (numpy)
  mesh_render renders a MorphMesh with our JAX rasterizer (Lambert shading, framing camera)
  preview     the side-by-side preview video: input | our face model | the avatar
  pipeline    estimate -> smooth -> write every output -> summary.json
"""

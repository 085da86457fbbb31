"""`cpem-jax retarget`: a video (or images, or a webcam) -> ARKit/Live Link/glTF/avatar outputs.

Modules:
  pipeline    estimator (cpem_jax.estimation) -> VideoEstimate -> smooth -> every writer of
              cpem_jax.export -> summary.json
  preview     the side-by-side preview video (input | our face model | the avatar) and the fit
              overlay video, both from the VideoEstimate and its crops
  mesh_render renders a MorphMesh with our JAX rasterizer (Lambert shading, framing camera)
  webcam      captures a webcam to a video file, which is then processed as a file
"""

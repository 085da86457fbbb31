"""`cpem-jax retarget`: a video (or images, or a webcam) -> ARKit/Live Link/glTF/avatar outputs.

Modules:
  pipeline    estimator (cpem_jax.estimation) -> VideoEstimate -> smooth -> every writer of
              cpem_jax.export -> summary.json
  output_files the output folder's checks and its atomic files (summary.json written last)
  run_state   what a run has done so far, for Ctrl-C and the summary (offline and live)
  live        the live run: frame by frame from a camera or a real-time replay, incremental
              writers, VMC, the optional preview window (live_window) and its statistics
              (live_stats)
  preview     the side-by-side preview video (input | our face model | the avatar) and the fit
              overlay video, both from the VideoEstimate and its crops
  mesh_render renders a MorphMesh with our JAX rasterizer (Lambert shading, framing camera)
  webcam      captures a webcam to a video file, which is then processed as a file
"""

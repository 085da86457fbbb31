"""Synthetic benchmark with exact ground truth.

`generator.generate_split` renders multi-frame clips from the face model and writes them in the
CPEM folder layout with a `ground_truth.npz` (`ground_truth.load_ground_truth`); `expressions`
samples sparse expressions that respect the contradictory pairs; `scene` samples pose, lighting,
backgrounds, blur and noise; `writer` writes the layout; `montage` draws a contact sheet.
Command line: `cpem-jax synth` (generate) and `cpem-jax evaluate` (score a predictor).
"""

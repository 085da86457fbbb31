"""Training PE-Net: state, the pure train step, sharding, checkpoints, metrics and the loop."""

"""The `cpem-jax` console command."""

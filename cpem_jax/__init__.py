"""cpem-jax: facial motion retargeting in JAX/Flax (CPEM, AAAI 2022, and beyond)."""
__version__ = "0.1.0"

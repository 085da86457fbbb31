"""Face geometry as small pure functions (jit and vmap friendly)."""

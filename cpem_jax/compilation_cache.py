"""JAX's persistent compilation cache under the project's cache folder.

The first run of a program compiles it (seconds to minutes on a CPU); with the cache on, later
runs of the same shapes load the compiled code from disk instead. `cpem-jax` turns it on by
default (`--no-compile-cache` turns it off); the folder is `$CPEM_CACHE/jax` (default
~/.cache/cpem_jax/jax), or `CPEM_COMPILE_CACHE` when set.
"""
from __future__ import annotations

import os
from typing import Optional

ENV_DIR = "CPEM_COMPILE_CACHE"


def default_dir() -> str:
    if os.environ.get(ENV_DIR):
        return os.environ[ENV_DIR]
    base = os.environ.get("CPEM_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                         "cpem_jax")
    return os.path.join(base, "jax")


def enable(path: Optional[str] = None) -> Optional[str]:
    """Turns the cache on in `path` (default `default_dir()`); every compiled program is kept.

    Returns the folder, or None when it cannot be created (the run goes on uncached).
    """
    import jax

    path = path or default_dir()
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path

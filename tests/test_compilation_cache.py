"""The persistent compilation cache: a second process loads what the first compiled."""
import os
import subprocess
import sys

PROGRAM = """
import sys, time
from cpem_jax import compilation_cache
print("dir", compilation_cache.enable(sys.argv[1]))
import jax, jax.numpy as jnp
f = jax.jit(lambda x: jnp.sin(x) @ jnp.cos(x).T + 1.0)
print(float(f(jnp.ones((64, 64))).sum()))
"""


def _run(path):
    out = subprocess.run([sys.executable, "-c", PROGRAM, str(path)], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_second_process_reuses_the_compiled_program(tmp_path):
    cache = tmp_path / "jax"
    first = _run(cache)
    entries = sorted(os.listdir(cache))
    assert f"dir {cache}" in first and entries, "nothing was written to the cache"
    second = _run(cache)
    assert first.splitlines()[-1] == second.splitlines()[-1]
    assert sorted(os.listdir(cache)) == entries  # A hit: no new entry.


def test_default_dir_follows_the_settings(monkeypatch, tmp_path):
    from cpem_jax import compilation_cache
    monkeypatch.delenv(compilation_cache.ENV_DIR, raising=False)
    monkeypatch.setenv("CPEM_CACHE", str(tmp_path))
    assert compilation_cache.default_dir() == str(tmp_path / "jax")
    monkeypatch.setenv(compilation_cache.ENV_DIR, str(tmp_path / "elsewhere"))
    assert compilation_cache.default_dir() == str(tmp_path / "elsewhere")
    (tmp_path / "blocker").write_text("")  # A folder that cannot be made: no cache, no error.
    assert compilation_cache.enable(str(tmp_path / "blocker" / "jax")) is None

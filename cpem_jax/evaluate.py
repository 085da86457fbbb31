"""`python -m cpem_jax.evaluate ...` = `cpem-jax evaluate ...` (see `cpem-jax evaluate --help`)."""
import sys

from cpem_jax.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["evaluate"] + sys.argv[1:]))

"""`cpem-jax`: the user-facing command. Each sub-command lives in its own module."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

from cpem_jax.cli import evaluate_cmd, fit_cmd, model_cmd, retarget_cmd, synth_cmd
from cpem_jax.cli.errors import UserError

# Sub-command modules: each has register(subparsers) and sets `func` on its parsers.
COMMANDS = (model_cmd, fit_cmd, retarget_cmd, synth_cmd, evaluate_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cpem-jax", allow_abbrev=False, description="Facial motion retargeting: face model tools, fitting, "
        "retargeting and evaluation.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.register(subparsers)
    _no_abbreviations(parser)
    return parser


def _no_abbreviations(parser: argparse.ArgumentParser) -> None:
    """A misspelt or partial flag is an error naming the real ones, on every sub-command (a
    prefix such as --out would otherwise silently pick --output or --outputs)."""
    parser.allow_abbrev = False
    for action in parser._actions:  # argparse keeps sub-parsers only there.
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _no_abbreviations(sub)


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s: %(message)s")
    logging.getLogger("jax").setLevel(logging.WARNING)
    logging.getLogger("absl").setLevel(logging.WARNING)  # Orbax logs every read at INFO.
    try:
        return int(args.func(args) or 0)
    except ImportError as err:
        print(f"cpem-jax: error: a required package is missing ({err}); install the project's "
              f"requirements: pip install -r requirements.txt", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError, KeyError, RuntimeError, UserError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"cpem-jax: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

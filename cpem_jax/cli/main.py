"""`cpem-jax`: the user-facing command. Each sub-command lives in its own module."""
from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings

# JAX warns on any fork; the front end's and the video writer's subprocesses fork and exec at
# once, which is safe, so that warning would only alarm the user.
warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called")
from typing import List, Optional

from cpem_jax.cli import (calibrate_cmd, evaluate_cmd, fit_cmd, model_cmd, prepare_cmd,
                          retarget_cmd, synth_cmd)
from cpem_jax.cli.errors import UserError
from cpem_jax.cli.options import EXIT_INTERRUPTED, use_landmarker_task

# Sub-command modules: each has register(subparsers) and sets `func` on its parsers.
COMMANDS = (model_cmd, fit_cmd, retarget_cmd, calibrate_cmd, prepare_cmd, synth_cmd,
            evaluate_cmd)


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


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices.get(command, parser)
    return parser


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parses the command line; an unknown flag is an error that names the flags it may have
    meant (those it is a prefix of: --livelink -> --livelink-eyes, --livelink-fps)."""
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        sub = _subparser(parser, args.command)
        flags = [f for a in sub._actions for f in a.option_strings if f.startswith("--")]
        meant = sorted({f for e in extras if e.startswith("--")
                        for f in flags if f.startswith(e.split("=")[0])})
        hint = f" (flags are not abbreviated: did you mean {' or '.join(meant)}?)" if meant else ""
        sub.error(f"unrecognized arguments: {' '.join(extras)}{hint}")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s: %(message)s")
    logging.getLogger("jax").setLevel(logging.WARNING)
    logging.getLogger("absl").setLevel(logging.WARNING)  # Orbax logs every read at INFO.
    # FFmpeg's decoder prints every damaged macroblock of a video ("[h264 @ 0x...] error while
    # decoding MB ..."); what matters reaches the user as our own warning (frames kept, dropped).
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    try:
        use_landmarker_task(args)
        return int(args.func(args) or 0)
    except ImportError as err:
        print(f"cpem-jax: error: a required package is missing ({err}); install the project's "
              f"requirements: pip install -r requirements.txt", file=sys.stderr)
        return 2
    except (OSError, ValueError, KeyError, RuntimeError, UserError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"cpem-jax: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C outside fit/retarget's run (which has its own handler).
        print("cpem-jax: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())

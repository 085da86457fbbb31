"""Options and helpers shared by the sub-commands that run an estimator (fit, retarget)."""
from __future__ import annotations

import contextlib
import logging
import warnings


def add_fit_options(parser) -> None:
    """The fitting options, shared by `cpem-jax fit` and `cpem-jax retarget --method fit`."""
    parser.add_argument("--size", type=int, default=224, help="crop size the model is fitted at")
    parser.add_argument("--no-photometric", action="store_true",
                        help="landmarks only (faster, no lighting/albedo)")
    parser.add_argument("--iterations-scale", type=float, default=1.0,
                        help="multiply every stage's iteration count (speed/quality trade-off)")


def fit_config_from_args(args):
    from cpem_jax.fit.fitter import FitConfig
    if args.iterations_scale <= 0:
        raise ValueError(f"--iterations-scale must be positive, got {args.iterations_scale}")
    base = FitConfig()
    scale = lambda n: max(1, int(round(n * args.iterations_scale)))
    return FitConfig(size=args.size, photometric=not args.no_photometric,
                     identity_landmark_iters=scale(base.identity_landmark_iters),
                     identity_photo_iters=scale(base.identity_photo_iters),
                     track_landmark_iters=scale(base.track_landmark_iters),
                     track_photo_iters=scale(base.track_photo_iters))


@contextlib.contextmanager
def warnings_as_log_lines():
    """Shows warnings (a truncated video, skipped images) as one log line each."""
    seen = set()

    def show(message, *rest, **kw):
        if str(message) not in seen:  # Say each warning once.
            seen.add(str(message))
            logging.warning("%s", message)

    with warnings.catch_warnings():
        warnings.showwarning = show
        # JAX warns on any fork; the video writer's ffmpeg subprocess forks and execs at once,
        # which is safe, so that warning would only alarm the user.
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called")
        yield

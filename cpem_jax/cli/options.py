"""Options and helpers shared by the sub-commands that run an estimator (fit, retarget)."""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import warnings

# Exit status of a run stopped by Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130
# How long Ctrl-C lets a run that can stop by itself (a live run) do so before ending it.
STOP_GRACE_S = 1.0


def add_fit_options(parser) -> None:
    """The fitting options, shared by `cpem-jax fit` and `cpem-jax retarget --method fit`."""
    parser.add_argument("--size", type=int, default=224, help="crop size the model is fitted at")
    parser.add_argument("--no-photometric", action="store_true",
                        help="landmarks only (faster, no lighting/albedo)")
    parser.add_argument("--iterations-scale", type=float, default=1.0,
                        help="multiply every stage's iteration count (speed/quality trade-off)")
    add_landmarker_option(parser)


LANDMARKERS = ("auto", "mediapipe", "dlib")


def add_compile_cache_option(parser) -> None:
    """`--no-compile-cache`: the persistent JAX compilation cache is on by default."""
    parser.add_argument("--no-compile-cache", action="store_true",
                        help="do not keep compiled programs on disk (by default they are kept "
                        "under $CPEM_CACHE/jax, or $CPEM_COMPILE_CACHE, so later runs start "
                        "without compiling)")


def enable_compile_cache(args) -> None:
    """Turns the persistent compilation cache on unless `--no-compile-cache` was given."""
    if getattr(args, "no_compile_cache", False):
        return
    from cpem_jax import compilation_cache
    folder = compilation_cache.enable()
    logging.debug("JAX compilation cache: %s", folder or "unavailable (folder not writable)")


def add_landmarker_option(parser) -> None:
    """`--landmarker auto|mediapipe|dlib`: the face front end of every method."""
    parser.add_argument("--landmarker", choices=LANDMARKERS, default="auto",
                        help="face front end: mediapipe (478-point face mesh with iris; the fit "
                        "uses every point), dlib (68 points), auto (mediapipe when installed "
                        "with its model bundle, else dlib)")
    add_landmarker_task_option(parser)


def add_landmarker_task_option(parser) -> None:
    """`--landmarker-task PATH`: MediaPipe's model bundle for this run (`use_landmarker_task`)."""
    parser.add_argument("--landmarker-task", metavar="PATH",
                        help="MediaPipe's face_landmarker.task (default: $CPEM_FACE_LANDMARKER_TASK, "
                        "then the cache folder, then $CPEM_SHARED/assets; `cpem-jax model "
                        "fetch-landmarker` downloads it)")


def use_landmarker_task(args) -> None:
    """Checks `--landmarker-task` (a readable FaceLandmarker bundle with the published sha256)
    and sets $CPEM_FACE_LANDMARKER_TASK for this run, where every MediaPipe front end looks
    first; without the flag, nothing changes. Raises TaskFileError (one line) on a bad file."""
    path = getattr(args, "landmarker_task", None)
    if not path:
        return
    from cpem_jax.detect.mediapipe_task import TASK_ENV, check_task_file
    os.environ[TASK_ENV] = os.path.abspath(check_task_file(os.path.expanduser(path)))


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


def _child_processes() -> list:
    """Ids of this process's children (Linux /proc; [] elsewhere)."""
    me, children = os.getpid(), []
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if len(fields) > 1 and int(fields[1]) == me:
                children.append(int(entry))
    return children


@contextlib.contextmanager
def stop_on_interrupt(state, progress: bool = True):
    """Ctrl-C (SIGINT) stops the run within a second, with one line and exit status 130.

    Python delivers KeyboardInterrupt only between bytecodes of the main thread, so during a
    compiled JAX computation it waits for the computation, and raised inside a garbage-collector
    callback it is swallowed and the run goes on. Here SIGINT raises nothing: its C-level handler
    writes to a wake-up socket (`signal.set_wakeup_fd`) that a watcher thread reads at once. The
    watcher stops the encoder processes the run started (ffmpeg), lets `state`
    (`cpem_jax.retarget.run_state.RunState`) remove unfinished files and list the complete ones,
    prints "cpem-jax: interrupted after N frames (...); ..." and ends the process with
    `EXIT_INTERRUPTED`. A state with `request_stop()` and a `stopped` event (a live run,
    `cpem_jax.retarget.run_state.LiveRunState`) is first asked to stop: when it says within
    `STOP_GRACE_S` that it is stopping, the run finishes its files and returns by itself (a
    second Ctrl-C then ends it at once as above).

    Args:
      state: a RunState, updated by the run.
      progress: progress bars are on (the line then starts on a fresh line).
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # Signals reach the main thread only; nothing to watch from here.
        return
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    stopping = threading.Event()

    def watch() -> None:
        asked = False
        while True:
            try:
                data = reader.recv(1)
            except OSError:
                return
            if not data:
                return  # The run ended and closed the socket.
            if data[0] != signal.SIGINT:
                continue
            request = getattr(state, "request_stop", None)
            if request is not None and not asked:
                asked = True
                request()  # A live run stops after its frame in hand and finishes itself...
                if state.stopped.wait(STOP_GRACE_S):
                    continue  # ...and a second Ctrl-C ends it at once.
            break
        stopping.set()
        for pid in _child_processes():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        try:
            line = state.finish_interrupted()
        except Exception as error:  # Still stop, and say why the summary is missing.
            line = f"interrupted; the summary could not be written ({error})"
        sys.stdout.flush()
        sys.stderr.write(("\n" if progress else "") + f"cpem-jax: {line}\n")
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)

    previous_handler = signal.signal(signal.SIGINT, lambda signum, frame: None)
    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    watcher = threading.Thread(target=watch, name="cpem-jax-interrupt", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        if stopping.is_set():
            watcher.join(30)  # It ends the process; the run's own error (if any) is moot.
        signal.set_wakeup_fd(previous_fd)
        signal.signal(signal.SIGINT, previous_handler)
        writer.close()
        watcher.join(1)
        reader.close()

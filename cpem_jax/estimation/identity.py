"""A person's locked identity for live estimation: the saved profile and the calibration that
fits one.

Profiles (`IdentityProfile`, an .npz): identity [K_id], albedo [K_alb], the face model's name
and sizes, the crop camera (size, focal per pixel, distance), how it was made; versioned by
`PROFILE_FORMAT` / `PROFILE_VERSION`. `cpem-jax calibrate` writes one
(`estimation.calibrate.calibrate_identity`), a live run saves the identity it calibrated.

Calibration (`IdentityCalibration`): the frames kept for an identity, each a crop
[S, S, 3] uint8 with its 68 points [68, 2] (and dense points [P, 2] where the front end gives
them) in crop pixels, and the offline fit's identity stage run on them
(`fit.fitter.SequenceFitter.fit_identity`: keyframes chosen by pose, identity and the
keyframes' expression and pose fitted jointly), in a background thread of lower CPU priority
during a live run (`start`) or in the caller's (`fit`).
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import threading
import time
from typing import List, Optional

import jax
import jax.numpy as jnp
import numpy as np

from cpem_jax.face_model.model import FaceModel
from cpem_jax.fit.params import SharedParams
from cpem_jax.geometry.camera import DEFAULT_DISTANCE_CM, DEFAULT_FOCAL_PER_PIXEL

PROFILE_FORMAT = "cpem-jax identity profile"
PROFILE_VERSION = 1


class ProfileError(ValueError):
    """An identity profile that cannot be used (unreadable, another format, another model)."""


@dataclasses.dataclass(frozen=True)
class IdentityProfile:
    """A person's locked face shape and albedo for one face model (module docstring).

    Attributes:
      identity: [K_id] float32 (~N(0, 1) per mode).
      albedo: [K_alb] float32 (0 when calibrated from landmarks only).
      face_model: the face model's name; n_expression: its unit count.
      size, focal_per_pixel, distance_cm: the crop camera the identity was fitted through.
      photometric: the identity stage used the photometric term (albedo fitted).
      frames: how many frames were collected; keyframes: the frames the identity stage used.
      source: where the frames came from; landmarker: the front end's class name.
    """
    identity: np.ndarray
    albedo: np.ndarray
    face_model: str
    n_expression: int
    size: int = 224
    focal_per_pixel: float = DEFAULT_FOCAL_PER_PIXEL
    distance_cm: float = DEFAULT_DISTANCE_CM
    photometric: bool = False
    frames: int = 0
    keyframes: int = 0
    source: str = ""
    landmarker: str = ""

    def shared(self) -> SharedParams:
        return SharedParams(identity=jnp.asarray(self.identity, jnp.float32),
                            albedo=jnp.asarray(self.albedo, jnp.float32))

    def save(self, path: str) -> str:
        """Writes the profile as an .npz (`path`, '.npz' added when missing); returns the path."""
        path = path if path.endswith(".npz") else path + ".npz"
        meta = {k: getattr(self, k) for k in ("face_model", "n_expression", "size",
                                              "focal_per_pixel", "distance_cm", "photometric",
                                              "frames", "keyframes", "source", "landmarker")}
        meta.update(format=PROFILE_FORMAT, version=PROFILE_VERSION,
                    created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        with open(path, "wb") as f:
            np.savez(f, identity=np.asarray(self.identity, np.float32),
                     albedo=np.asarray(self.albedo, np.float32), meta=json.dumps(meta))
        return path

    @classmethod
    def load(cls, path: str, model: Optional[FaceModel] = None) -> "IdentityProfile":
        """Reads a profile written by `save`, checked against `model` when given.

        Raises:
          ProfileError: one line naming the problem and the fix.
        """
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                identity = np.asarray(data["identity"], np.float32)
                albedo = np.asarray(data["albedo"], np.float32)
        except FileNotFoundError:
            raise ProfileError(f"identity profile {path!r} does not exist; make one with "
                               f"`cpem-jax calibrate VIDEO -o {path}`") from None
        except (OSError, ValueError, KeyError) as error:
            raise ProfileError(f"{path!r} is not an identity profile ({error}); make one with "
                               "`cpem-jax calibrate VIDEO -o me.npz`") from None
        if meta.get("format") != PROFILE_FORMAT or meta.get("version") != PROFILE_VERSION:
            raise ProfileError(f"{path!r} is a {meta.get('format')!r} file of version "
                               f"{meta.get('version')!r}, not a {PROFILE_FORMAT} of version "
                               f"{PROFILE_VERSION}; calibrate again with `cpem-jax calibrate`")
        profile = cls(identity=identity, albedo=albedo,
                      **{k: meta[k] for k in ("face_model", "n_expression", "size",
                                              "focal_per_pixel", "distance_cm", "photometric",
                                              "frames", "keyframes", "source", "landmarker")})
        if model is not None:
            profile.check(model, path)
        return profile

    def check(self, model: FaceModel, path: str = "the profile") -> None:
        """Raises ProfileError unless the profile belongs to `model` (name and sizes)."""
        if (self.face_model != model.name or self.identity.shape != (model.n_identity,)
                or self.albedo.shape != (model.n_albedo,)
                or self.n_expression != model.n_expression):
            raise ProfileError(
                f"{path} was calibrated for face model {self.face_model!r} ({self.identity.size} "
                f"identity, {self.albedo.size} albedo coefficients), not {model.name!r} "
                f"({model.n_identity}, {model.n_albedo}); pass the same --face-model or "
                "calibrate again")


# The live calibration's thread runs this many nice steps below the per-frame path: XLA:CPU
# runs a small program on the thread that calls it, so the frames keep the CPU they need and
# the identity stage takes what is left (on Linux, where a thread has its own nice value).
CALIBRATION_NICENESS = 10
# While it runs, Python hands the interpreter lock between threads every 0.2 ms instead of 5:
# the identity stage's first call traces and compiles in Python (~0.4 s holding the lock in 5 ms
# turns), and a frame, which takes the lock hundreds of times, waited up to 5 ms each time
# (frames of 150-250 ms and 6-9 dropped; with 0.2 ms none over 45 ms, measured on retalking_2).
CALIBRATION_SWITCH_INTERVAL_S = 0.0002


def lower_thread_priority(steps: int) -> bool:
    """Lowers the calling thread's CPU priority by `steps` nice steps; False where the system
    gives threads no priority of their own or refuses (nothing changes then)."""
    if steps <= 0 or not sys.platform.startswith("linux"):
        return False
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + steps))
        return True
    except (AttributeError, OSError):
        return False


class IdentityCalibration:
    """Frames kept for an identity, and the identity stage run on them (module docstring).

    Attributes:
      wanted: how many frames to keep.
      crops, landmarks, dense: the kept frames' crops and points (dense only where given).
      thread: the background identity stage (None until `start`).
      result: the fitted SharedParams (host arrays), once `done` is set without an error.
      keyframes: how many frames the identity stage used; seconds: how long it took.
      error: what the identity stage raised, reported in the consumer's thread.
      done: set when the identity stage has ended.
    """

    def __init__(self, wanted: int):
        self.wanted = wanted
        self.crops: List[np.ndarray] = []
        self.landmarks: List[np.ndarray] = []
        self.dense: List[np.ndarray] = []
        self.thread: Optional[threading.Thread] = None
        self.result: Optional[SharedParams] = None
        self.keyframes = 0
        self.error: Optional[BaseException] = None
        self.seconds = 0.0
        self.done = threading.Event()

    @property
    def full(self) -> bool:
        """As many frames as wanted are kept."""
        return len(self.crops) >= self.wanted

    def add(self, crop: np.ndarray, landmarks: np.ndarray,
            dense: Optional[np.ndarray] = None) -> None:
        """Keeps one frame: crop [S, S, 3] uint8, landmarks [68, 2] and dense [P, 2] (or None)
        float32 crop pixels."""
        self.crops.append(crop)
        self.landmarks.append(landmarks)
        if dense is not None:
            self.dense.append(dense)

    def start(self, fitter, niceness: int = CALIBRATION_NICENESS,
              switch_interval_s: float = CALIBRATION_SWITCH_INTERVAL_S) -> None:
        """Runs `fit(fitter)` in a background thread, `niceness` steps below the caller's CPU
        priority where the system allows it (`lower_thread_priority`), with Python's thread
        switch interval at `switch_interval_s` until it ends (then restored)."""
        previous = sys.getswitchinterval()

        def run():
            lower_thread_priority(niceness)
            try:
                self.fit(fitter)
            finally:
                sys.setswitchinterval(previous)
        sys.setswitchinterval(switch_interval_s)
        self.thread = threading.Thread(target=run, daemon=True, name="identity-calibration")
        self.thread.start()

    def fit(self, fitter) -> None:
        """The identity stage of `fitter` (a `fit.fitter.SequenceFitter`) on the kept frames;
        sets `result` and `keyframes` (or `error`), `seconds`, then `done`."""
        start = time.perf_counter()
        try:
            dense = np.stack(self.dense) if self.dense else None
            shared, ids, _ = fitter.fit_identity(
                np.stack(self.crops), np.stack(self.landmarks), dense)
            self.result = jax.device_get(shared)
            self.keyframes = len(ids)
        except BaseException as error:  # Reported in the consumer's thread.
            self.error = error
        self.seconds = time.perf_counter() - start
        self.done.set()

    def profile(self, model: FaceModel, size: int, photometric: bool, landmarker: str,
                source: str = "") -> IdentityProfile:
        """The fitted identity as a profile (after `done`, without an error)."""
        return IdentityProfile(
            identity=np.asarray(self.result.identity, np.float32),
            albedo=np.asarray(self.result.albedo, np.float32),
            face_model=model.name, n_expression=model.n_expression,
            size=size, photometric=photometric,
            frames=len(self.crops), keyframes=self.keyframes, source=source,
            landmarker=landmarker)

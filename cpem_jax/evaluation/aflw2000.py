"""AFLW2000-3D: 68-point 2D NME by yaw bins, normalised by the ground-truth box.

File layout (as distributed): ROOT/imageXXXXX.jpg with ROOT/imageXXXXX.mat beside it; each .mat
holds `pt3d_68` [3, 68] (x, y, z; x, y in image pixels, as given by the dataset: the same pixel
frame must be used by the predictor) and `Pose_Para` [1, 7] (pitch, yaw, roll in radians, then
translation tx, ty, tz and scale s).

Pose convention of the release (checked on the 100 sample files, see
tests/test_evaluation_aflw2000.py): its rotation is R_rel = Rx(pitch) Ry(yaw) Rz(roll) with each
factor the transpose of the project's axis rotation, that is

    R_rel = euler_to_matrix((pitch, yaw, roll))^T      (cpem_jax.geometry.rotation)

(to first order the project's rotation with all three angles negated), and
pt3d_68 = s R_rel X + t with the image y axis pointing down: (x, -y, z) of pt3d_68 is, up to a
translation, s R_rel X for one face shape X (x right, y up, z toward the viewer). With R_rel
built this way, the 100 sample shapes brought back to the model frame agree to 7% of the face
size (median), against 100% and more for the untransposed matrix. A positive release yaw turns
the nose toward the image left. R_rel is the head rotation in the project's camera frame too, so
`Aflw2000Set.project_pose` = `matrix_to_euler(R_rel)`: to first order the negated release angles;
at large yaw the two axis orders give quite different numbers for the same rotation (image00451:
release (13.8, 77.6, -0.2), project (-49.1, -71.4, 47.6) degrees).

Angles: the stored angles are not wrapped (the sample holds pitch -328 and roll 334 degrees, the
full release yaw values such as -351). They are recovered from the rotation matrix: the release
angles as the decomposition of R_rel^T = euler_to_matrix(angles) (the release's own axis order),
each in (-180, 180]; of the two angle triples that give the same matrix, the one with the smaller
max(|pitch|, |roll|) (the head nearer upright) is kept, so |yaw| can exceed 90 for a head turned
beyond profile. Frames are binned by this |yaw|.

Protocol (3DDFA / CPEM): NME = mean over the 68 points of the 2D distance between predicted and
ground-truth landmarks, divided by sqrt(w * h) of the tight box of the ground-truth 2D landmarks;
frames are binned by |yaw| into [0,30], (30,60], (60,90] degrees (|yaw| > 90 goes to the last
bin); the headline number is the mean of the three bin means. Every image is scored: where the
detector misses the face, the landmarker starts from a box placed on the ground-truth landmarks
(`predict_aflw2000`), and the image counts as a detector miss in its bin. CPEM reports
2.68 / 3.48 / 4.75 / 3.64 (%), 3DDFA-V2 2.89 / 3.57 / 4.49 / 3.65, both for landmarks of a
fitted dense face model. The whole estimator (fit or network) is run on the images by
`cpem_jax.evaluation.still_images.run_aflw2000` (`cpem-jax evaluate --aflw2000`), with the same
fallback for misses; its head pose is scored by `pose_errors_deg`.

Re-annotated landmarks: 3DDFA's re-annotation of the 68 points is distributed as a NumPy array
[N, 2 or 3, 68] (x, y[, z] rows, the same pixel frame as pt3d_68) with a list file naming the
image of each row; `read_reannotated` reads the pair and `load_aflw2000(reannotated=...)` scores
against it instead of pt3d_68.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from cpem_jax.evaluation import annotated, landmarks

N_POINTS = 68
# Paper numbers (NME in %), keys as landmarks.yaw_bin_labels() then the mean of the bins.
PAPER_AFLW2000_NME = {
    "CPEM paper": (2.68, 3.48, 4.75, 3.64),
    "3DDFA-V2 (from the CPEM paper)": (2.89, 3.57, 4.49, 3.65),
}
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


class Aflw2000FormatError(ValueError):
    """An AFLW2000-3D file that does not match the documented layout."""


@dataclasses.dataclass
class Aflw2000Set:
    """N annotated images, sorted by name.

    Attributes:
      names: [N] file stems (imageXXXXX).
      image_paths: [N] image files.
      landmarks: [N, 68, 2] float64 ground-truth (x, y) in image pixels.
      yaw_deg: [N] float64 release yaw in degrees, recovered from the rotation (module doc).
      angles_deg: [N, 3] float64 release (pitch, yaw, roll) in degrees, recovered the same way.
      project_pose: [N, 3] float64 the head rotation as (pitch, yaw, roll) radians in the
        project's convention (cpem_jax.geometry.rotation).
    """
    names: List[str]
    image_paths: List[str]
    landmarks: np.ndarray
    yaw_deg: np.ndarray
    angles_deg: np.ndarray
    project_pose: np.ndarray


def release_rotation(pose: np.ndarray) -> np.ndarray:
    """Pose_Para [..., 7] (or [..., 3] angles) -> the release's rotation R_rel [..., 3, 3] float64.

    R_rel = euler_to_matrix((pitch, yaw, roll))^T (module docstring).
    """
    from cpem_jax.geometry.rotation import euler_to_matrix

    angles = np.asarray(pose, np.float64)[..., :3]
    return np.swapaxes(euler_to_matrix(angles, xp=np), -1, -2)


def _wrap(angles: np.ndarray) -> np.ndarray:
    """Radians -> (-pi, pi]."""
    return np.pi - np.mod(np.pi - angles, 2 * np.pi)


def _upright_euler(matrix: np.ndarray) -> np.ndarray:
    """R [..., 3, 3] = euler_to_matrix(a) -> a [..., 3] float64 radians, the triple nearer upright.

    `matrix_to_euler` gives the triple with |yaw| <= 90 degrees; (pitch + pi, pi - yaw,
    roll + pi) gives the same matrix. The one with the smaller max(|pitch|, |roll|) is kept.
    """
    import jax.numpy as jnp

    from cpem_jax.geometry.rotation import matrix_to_euler

    first = np.asarray(matrix_to_euler(jnp.asarray(matrix)), np.float64)
    other = _wrap(first + np.array([np.pi, 0.0, np.pi]))
    other[..., 1] = _wrap(np.pi - first[..., 1])
    tilt_first = np.abs(first[..., [0, 2]]).max(axis=-1)
    tilt_other = np.abs(other[..., [0, 2]]).max(axis=-1)
    return np.where((tilt_other < tilt_first)[..., None], other, _wrap(first))


def release_angles(pose: np.ndarray) -> np.ndarray:
    """Pose_Para [..., 7] -> release (pitch, yaw, roll) [..., 3] radians, wrapped (module doc)."""
    return _upright_euler(np.swapaxes(release_rotation(pose), -1, -2))


def project_pose(pose: np.ndarray) -> np.ndarray:
    """Pose_Para [..., 7] -> the head rotation as project (pitch, yaw, roll) [..., 3] radians."""
    return _upright_euler(release_rotation(pose))


def read_annotation(path: str):
    """One .mat -> (landmarks [68, 2] float64 pixels, pose [7] float64 as stored)."""
    from scipy import io as sio

    try:
        mat = sio.loadmat(path)
    except Exception as err:  # scipy raises several types for a bad file
        raise Aflw2000FormatError(f"{path}: not a readable MATLAB file ({err})") from None
    for key in ("pt3d_68", "Pose_Para"):
        if key not in mat:
            raise Aflw2000FormatError(f"{path}: lacks {key!r}; is this an AFLW2000-3D .mat?")
    pts = np.asarray(mat["pt3d_68"], np.float64)
    pose = np.asarray(mat["Pose_Para"], np.float64).reshape(-1)
    if pts.shape != (3, N_POINTS):
        raise Aflw2000FormatError(f"{path}: pt3d_68 is {pts.shape}, expected (3, 68)")
    if pose.shape != (7,):
        raise Aflw2000FormatError(f"{path}: Pose_Para has {pose.size} values, expected 7")
    return pts[:2].T.copy(), pose


def read_reannotated(array_path: str, list_path: str) -> Dict[str, np.ndarray]:
    """3DDFA's re-annotated 68 points -> {image stem: [68, 2] float64 pixels}.

    Args:
      array_path: .npy of shape [N, 2 or 3, 68] (x, y[, z] rows).
      list_path: text file with N lines, the image of each row (e.g. "image00002.jpg"; a folder
        prefix is ignored).
    Raises:
      Aflw2000FormatError: unreadable files, a wrong shape, or counts that disagree.
    """
    try:
        points = np.load(array_path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise Aflw2000FormatError(f"{array_path}: not a readable .npy array ({err})") from None
    if points.ndim != 3 or points.shape[1] not in (2, 3) or points.shape[2] != N_POINTS:
        raise Aflw2000FormatError(f"{array_path}: shape {points.shape}, expected "
                                  f"[N, 2 or 3, 68]")
    try:
        with open(list_path, encoding="utf-8") as f:
            lines = [line.strip() for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as err:
        raise Aflw2000FormatError(f"{list_path}: not a readable list file ({err})") from None
    if len(lines) != len(points):
        raise Aflw2000FormatError(f"{list_path} names {len(lines)} images but {array_path} "
                                  f"holds {len(points)} rows")
    stems = [os.path.splitext(os.path.basename(line))[0] for line in lines]
    return {stem: points[i, :2].T.astype(np.float64) for i, stem in enumerate(stems)}


def balanced_subset(yaw_deg: np.ndarray, n: int) -> np.ndarray:
    """Indices [min(n, N)] int64 of a yaw-balanced subset, in ascending order.

    The |yaw| bins get equal shares of `n` (earlier bins take the remainder); a bin with too few
    images gives its unused share to the others. Within a bin the first indices are taken (the
    set is sorted by name), so the subset is deterministic.
    """
    if n < 1:
        raise ValueError(f"limit must be >= 1, got {n}")
    idx = landmarks.yaw_bin_index(yaw_deg)
    members = [np.flatnonzero(idx == b) for b in range(len(landmarks.yaw_bin_labels()))]
    quota = [0] * len(members)
    left = min(n, sum(len(m) for m in members))
    while left > 0:
        open_bins = [b for b, m in enumerate(members) if quota[b] < len(m)]
        share, extra = divmod(left, len(open_bins))
        for rank, b in enumerate(open_bins):
            give = min(share + (1 if rank < extra else 0), len(members[b]) - quota[b])
            quota[b] += give
            left -= give
    return np.sort(np.concatenate([m[:q] for m, q in zip(members, quota)]).astype(np.int64))


def load_aflw2000(root: str, limit: Optional[int] = None,
                  reannotated: Optional[Tuple[str, str]] = None) -> Aflw2000Set:
    """Reads every .mat of ROOT (sorted by name) with its image.

    Args:
      root: the folder holding imageXXXXX.jpg and imageXXXXX.mat.
      limit: keep a yaw-balanced subset of this many images (`balanced_subset`), for quick runs.
      reannotated: (array .npy, list file) of 3DDFA's re-annotated points (`read_reannotated`):
        the ground truth landmarks come from there instead of pt3d_68.
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"AFLW2000-3D root {root!r} is not a folder; pass the folder "
                                f"holding imageXXXXX.jpg and imageXXXXX.mat")
    mats = sorted(n for n in os.listdir(root) if n.lower().endswith(".mat"))
    if not mats:
        raise Aflw2000FormatError(f"no .mat files in {root!r}")
    names, paths, lms, poses = [], [], [], []
    for name in mats:
        stem = name[:-4]
        image = next((os.path.join(root, stem + e) for e in _IMAGE_EXTENSIONS
                      if os.path.isfile(os.path.join(root, stem + e))), None)
        if image is None:
            raise Aflw2000FormatError(f"{os.path.join(root, name)} has no image {stem}.jpg")
        lm, pose = read_annotation(os.path.join(root, name))
        names.append(stem)
        paths.append(image)
        lms.append(lm)
        poses.append(pose)
    poses = np.stack(poses)
    angles = np.degrees(release_angles(poses))
    if limit:
        keep = balanced_subset(angles[:, 1], limit)
        names = [names[i] for i in keep]
        paths = [paths[i] for i in keep]
        lms = [lms[i] for i in keep]
        poses, angles = poses[keep], angles[keep]
    if reannotated is not None:
        table = read_reannotated(*reannotated)
        missing = [n for n in names if n not in table]
        if missing:
            raise Aflw2000FormatError(f"{reannotated[1]} lacks {len(missing)} images of "
                                      f"{root!r}, e.g. {missing[0]}")
        lms = [table[n] for n in names]
    return Aflw2000Set(names, paths, np.stack(lms), angles[:, 1].copy(), angles,
                       project_pose(poses))


def aflw2000_scores(predicted: np.ndarray, target: np.ndarray, yaw_deg: np.ndarray,
                    missed: Optional[np.ndarray] = None) -> dict:
    """predicted, target [N, 68, 2] pixels, yaw_deg [N] -> NME per |yaw| bin in %.

    Args:
      missed: [N] bool, images where the detector missed the face (their landmarks came from
        the ground-truth box; they are scored like the others and counted per bin).
    Returns:
      `landmarks.nme_by_yaw_bins` in % (each bin: "nme", "count" scored images, "missed",
      "unscored"), plus "n_missed", "n_unscored" (rows of `predicted` with a NaN: no landmarks
      at all, left out of the means), "interval95" (`landmarks.bin_mean_intervals`: 95 %
      bootstrap intervals of each bin mean and of their mean), "unit": "%".
    """
    predicted = np.asarray(predicted, np.float64)
    target = np.asarray(target, np.float64)
    if predicted.shape != target.shape or predicted.shape[1:] != (N_POINTS, 2):
        raise ValueError(f"predicted {predicted.shape} and target {target.shape} must be "
                         f"[N, 68, 2]")
    yaw_deg = np.asarray(yaw_deg, np.float64).reshape(-1)
    if yaw_deg.shape != (len(target),):
        raise ValueError(f"yaw_deg has {yaw_deg.size} values for {len(target)} images")
    missed = np.zeros(len(target), bool) if missed is None else np.asarray(missed, bool)
    if missed.shape != (len(target),):
        raise ValueError(f"missed has {missed.size} values for {len(target)} images")
    values = landmarks.nme(predicted, target, landmarks.box_size(landmarks.landmark_box(target)))
    out = landmarks.nme_by_yaw_bins(values * 100.0, yaw_deg)
    bin_of = landmarks.yaw_bin_index(yaw_deg)
    for b, label in enumerate(out["bins"]):
        out["bins"][label]["missed"] = int((missed & (bin_of == b)).sum())
        out["bins"][label]["unscored"] = int((~np.isfinite(values) & (bin_of == b)).sum())
    out["n_missed"] = int(missed.sum())
    out["n_unscored"] = int((~np.isfinite(values)).sum())
    out["interval95"] = landmarks.bin_mean_intervals(values * 100.0, yaw_deg)
    out["unit"] = "%"
    return out


# A landmarker's output on an Aflw2000Set (see `annotated.FrontEndPredictions`).
Aflw2000Predictions = annotated.FrontEndPredictions


def predict_aflw2000(landmarker, data: Aflw2000Set, progress: bool = False,
                     read_image: Optional[Callable[[str], np.ndarray]] = None
                     ) -> annotated.FrontEndPredictions:
    """Runs a FaceLandmarker on every image, with the protocol's fallback for detector misses.

    Per image: `landmarker.detect(image)` on the [H, W, 3] uint8 RGB image; the face is the
    detection whose box overlaps the ground-truth landmark box most (its centre inside that box).
    Where there is none, the detector missed: `landmarker.landmarks_in_boxes` runs on a box
    placed on the ground-truth landmarks, in the landmarker's own box convention (the median box
    of the detected faces relative to the extent of their predicted landmarks; the tight
    landmark box when nothing was detected at all). See `annotated.predict_annotated`.

    Args:
      landmarker: a `cpem_jax.detect.FaceLandmarker`.
      data: from `load_aflw2000`.
      progress: show a progress bar.
      read_image: path -> [H, W, 3] uint8 RGB (default `cpem_jax.io.read_image`).
    """
    return annotated.predict_annotated(landmarker, data.image_paths, data.landmarks,
                                       progress=progress, read_image=read_image,
                                       desc="AFLW2000-3D")


def pose_errors_deg(rotation: np.ndarray, data: "Aflw2000Set") -> dict:
    """Head-pose error of predicted rotations against the set's, in degrees.

    Args:
      rotation: [N, 3] predicted head rotation (pitch, yaw, roll) radians in the project's
        convention (cpem_jax.geometry.rotation); NaN rows (no estimate) are left out.
      data: the Aflw2000Set the rows belong to.
    Returns:
      {"pitch", "yaw", "roll": mean absolute error of the release-convention angles (the
       predicted rotation decomposed the way `release_angles` decomposes the ground truth,
       which is how pose errors on AFLW2000-3D are usually quoted), "geodesic": mean angle of
       the rotation between prediction and ground truth (convention-free), "count": images
       scored, "per_image": [N, 4] absolute (pitch, yaw, roll) and geodesic errors (NaN where
       no estimate)}. Angle differences are wrapped to (-180, 180].
    """
    from cpem_jax.geometry.rotation import euler_to_matrix

    rotation = np.asarray(rotation, np.float64)
    if rotation.shape != (len(data.names), 3):
        raise ValueError(f"rotation is {rotation.shape}, expected [{len(data.names)}, 3]")
    ok = np.isfinite(rotation).all(axis=1)
    err = np.full((len(rotation), 4), np.nan)
    if ok.any():
        mine = euler_to_matrix(rotation[ok], xp=np)                    # = R_rel of the estimate
        truth = euler_to_matrix(data.project_pose[ok], xp=np)          # = R_rel
        release = _upright_euler(np.swapaxes(mine, -1, -2))            # as `release_angles`
        err[ok, :3] = np.degrees(np.abs(_wrap(release - np.radians(data.angles_deg[ok]))))
        cos = (np.trace(np.swapaxes(mine, -1, -2) @ truth, axis1=-2, axis2=-1) - 1.0) / 2.0
        err[ok, 3] = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    means = err[ok].mean(axis=0) if ok.any() else np.full(4, np.nan)
    return {"pitch": float(means[0]), "yaw": float(means[1]), "roll": float(means[2]),
            "geodesic": float(means[3]), "count": int(ok.sum()), "per_image": err}


def evaluate_aflw2000(predictor: Union[Callable[[np.ndarray], np.ndarray], object], root: str,
                      limit: Optional[int] = None, progress: bool = False) -> dict:
    """Runs a landmark predictor on AFLW2000-3D and scores it.

    Args:
      predictor: a `cpem_jax.detect.FaceLandmarker` (detection, with the ground-truth-box
        fallback of `predict_aflw2000` for misses), or a function image [H, W, 3] uint8 RGB ->
        [68, 2] pixels in the image, NaN when it found no face (such images count as missed and
        stay unscored, since a function offers no fallback).
      root: the AFLW2000-3D folder.
      limit: evaluate a yaw-balanced subset of this many images (`balanced_subset`).
      progress: show a progress bar.
    Returns:
      `aflw2000_scores` plus "dataset": "AFLW2000-3D" and, for a landmarker,
      "seconds_per_image" (mean wall seconds of detection + fallback).
    """
    data = load_aflw2000(root, limit)
    if hasattr(predictor, "detect") and hasattr(predictor, "landmarks_in_boxes"):
        result = predict_aflw2000(predictor, data, progress=progress)
        out = aflw2000_scores(result.landmarks, data.landmarks, data.yaw_deg, result.missed)
        out["seconds_per_image"] = float(np.mean(result.detect_s + result.fallback_s))
    else:
        from cpem_jax.io import read_image
        pred = np.full(data.landmarks.shape, np.nan)
        for i, path in enumerate(data.image_paths):
            p = np.asarray(predictor(read_image(path)), np.float64)
            if p.shape != (N_POINTS, 2):
                raise ValueError(f"the predictor returned {p.shape}, expected (68, 2)")
            pred[i] = p
        missed = ~np.isfinite(pred).all(axis=(1, 2))
        out = aflw2000_scores(pred, data.landmarks, data.yaw_deg, missed)
    out["dataset"] = "AFLW2000-3D"
    return out


def bin_table(scores: dict) -> List[Sequence]:
    """Rows (bin, NME %, scored images, missed, unscored) of `aflw2000_scores`, then the mean."""
    rows = [(label, b["nme"], b["count"], b["missed"], b["unscored"])
            for label, b in scores["bins"].items()]
    rows.append(("mean of bins", scores["mean_of_bins"], scores["count"], scores["n_missed"],
                 scores["n_unscored"]))
    return rows

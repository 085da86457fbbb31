"""Agreement of the Flax port with dlib itself (dlib is a test-only dependency: `dlib-bin`).

On every face of $CPEM_SHARED/data/images and on frames of $CPEM_SHARED/data/cpem-demo:
our descriptor vs dlib's `compute_face_descriptor`, our chip vs `dlib.get_face_chip`, and the
same-person / different-person ordering of distances.
"""
import glob
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cpem_jax.recognition import alignment, embedding

dlib = pytest.importorskip("dlib", reason="dlib not installed (pip install dlib-bin)")
frm = pytest.importorskip("face_recognition_models",
                          reason="face_recognition_models not installed "
                                 "(pip install face-recognition-models)")

SHARED = os.environ.get("CPEM_SHARED", os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared"))
FRAMES_PER_PERSON = 3
# dlib halves the image with a blurring pyramid before sampling a chip whose face is more than
# twice the chip's size; we sample bilinearly at full resolution (see alignment.py).
PYRAMID_SCALE = 2.0


def _samples():
    """[(path, person)] : the shared photos and a few frames per person of the demo set."""
    images = os.path.join(SHARED, "data", "images")
    demo = os.path.join(SHARED, "data", "cpem-demo")
    if not (os.path.isdir(images) and os.path.isdir(demo)):
        pytest.skip(f"shared data not found under {SHARED} (set CPEM_SHARED)")
    out = [(p, None) for p in sorted(glob.glob(os.path.join(images, "*.jpg")))]
    for person_dir in sorted(glob.glob(os.path.join(demo, "*", "data", "*"))):
        frames = sorted(glob.glob(os.path.join(person_dir, "**", "*.jpg"), recursive=True))
        step = max(1, len(frames) // FRAMES_PER_PERSON)
        out += [(f, os.path.basename(person_dir)) for f in frames[::step][:FRAMES_PER_PERSON]]
    return out


@pytest.fixture(scope="module")
def faces():
    """Every detected face: dlib's chip, descriptors, landmarks and our results."""
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    rec = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    _, params = embedding.load_face_embedder()
    embed_chips = jax.jit(embedding.embed_chips)
    embed = jax.jit(embedding.embed)
    chips_fn = jax.jit(alignment.extract_face_chips)
    out = []
    for path, person in _samples():
        img = dlib.load_rgb_image(path)
        rects = list(detector(img, 1))
        if not rects:  # the demo frames are face crops: the whole frame is the face box
            rects = [dlib.rectangle(0, 0, img.shape[1] - 1, img.shape[0] - 1)]
        for k, rect in enumerate(rects):
            shape = predictor(img, rect)
            lm = np.array([[p.x, p.y] for p in shape.parts()], np.float32)
            lm = lm + alignment.PIXEL_CENTRE_OFFSET
            chip = dlib.get_face_chip(img, shape, size=150, padding=0.25)
            image = jnp.asarray(img[None] / 255.0, jnp.float32)
            out.append(dict(
                name=f"{os.path.basename(path)}#{k}",
                person=person or f"{os.path.basename(path)}#{k}",
                scale=dlib.get_face_chip_details(shape, 150, 0.25).rect.width() / 150.0,
                dlib_chip=chip,
                dlib_on_chip=np.array(rec.compute_face_descriptor(chip)),
                dlib_full=np.array(rec.compute_face_descriptor(img, shape)),
                ours_on_chip=np.asarray(embed_chips(params, jnp.asarray(chip[None] / 255.0,
                                                                        jnp.float32)))[0],
                ours_full=np.asarray(embed(params, image, jnp.asarray(lm[None])))[0],
                our_chip=np.asarray(chips_fn(image, jnp.asarray(lm[None])))[0],
            ))
    assert len(out) >= 10
    return out


def _cos(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_network_matches_dlib_on_dlib_chips(faces):
    for f in faces:
        assert _cos(f["ours_on_chip"], f["dlib_on_chip"]) >= 0.9999, f["name"]


def test_full_pipeline_matches_compute_face_descriptor(faces):
    """Our alignment + network vs dlib's compute_face_descriptor(image, shape)."""
    for f in faces:
        assert _cos(f["ours_full"], f["dlib_full"]) >= 0.999, f["name"]


def test_chips_match_get_face_chip(faces):
    """dlib's chips are uint8 (truncated): half a grey level apart on average."""
    checked = 0
    for f in faces:
        if f["scale"] > PYRAMID_SCALE:
            continue
        diff = np.abs(f["our_chip"] * 255.0 - f["dlib_chip"].astype(np.float64))
        assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 1.5, f["name"]
        checked += 1
    assert checked >= 10


def test_same_person_pairs_closer_as_in_dlib(faces):
    people = [f["person"] for f in faces]
    ours = np.stack([f["ours_full"] for f in faces])
    ref = np.stack([f["dlib_full"] for f in faces])
    ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    d_ours = np.linalg.norm(ours[:, None] - ours[None], axis=-1)
    d_ref = np.linalg.norm(ref[:, None] - ref[None], axis=-1)
    n = len(faces)
    same = [(i, j) for i in range(n) for j in range(i + 1, n) if people[i] == people[j]]
    diff = [(i, j) for i in range(n) for j in range(i + 1, n) if people[i] != people[j]]
    assert same and diff
    agree = total = 0
    for s in same:
        for d in diff:
            if d_ref[s] < d_ref[d]:
                total += 1
                agree += d_ours[s] < d_ours[d]
    assert total > 0 and agree == total
    np.testing.assert_allclose(d_ours, d_ref, atol=0.02)

"""`cpem-jax evaluate` and evaluation/synthetic_eval.py on a tiny synthetic split."""
import json

import numpy as np
import pytest

SIZE = 64
NET_SIZE = 32   # the fake network's input size: exercises resizing and landmark scaling


@pytest.fixture(scope="module")
def split(model, tmp_path_factory):
    from cpem_jax.synthetic.generator import SynthConfig, generate_split
    path = tmp_path_factory.mktemp("synth_eval") / "test"
    gt = generate_split(model, str(path), SynthConfig(n_clips=2, n_frames=4, image_size=SIZE,
                                                       seed=11, batch_size=4), progress=False)
    return str(path), gt


class FakePredictor:
    """Returns the ground truth of the frames in call order, plus controlled offsets."""

    def __init__(self, model, gt, identity_step=0.0, expression_drop=0.0, yaw_deg=0.0):
        from cpem_jax.geometry.camera import default_camera
        self.model, self.gt, self.image_size = model, gt, NET_SIZE
        self.camera = default_camera(NET_SIZE, focal=gt.focal_px * NET_SIZE / gt.image_size,
                                     distance_cm=gt.distance_cm)
        self.identity_step, self.expression_drop, self.yaw = identity_step, expression_drop, \
            np.radians(yaw_deg)
        self.next_row = 0
        self.step = 7

    def __call__(self, crops):
        from cpem_jax.face_model.model import Coefficients
        assert crops.shape[1:] == (NET_SIZE, NET_SIZE, 3)
        gt = self.gt
        rows = np.arange(self.next_row, self.next_row + len(crops))
        self.next_row += len(crops)
        x = gt.expression[rows]
        rotation = gt.rotation[rows].copy()
        rotation[:, 1] += self.yaw
        return Coefficients(
            identity=gt.identity[rows] + self.identity_step * gt.frame_index[rows, None],
            expression=np.where(x > 0.8, x - self.expression_drop, x),
            albedo=gt.albedo[rows], lighting=gt.lighting[rows], rotation=rotation,
            translation=gt.translation[rows])


def _evaluate(model, split, predictor):
    from cpem_jax.evaluation import synthetic_eval
    path, gt = split
    frames = synthetic_eval.split_frames(path, gt)
    est = synthetic_eval.predict_network(predictor, gt, frames, batch_size=3, progress=False)
    return synthetic_eval.evaluate_estimates(est, gt, model.id_basis)


def test_exact_predictor_scores_zero(model, split):
    res = _evaluate(model, split, FakePredictor(model, split[1]))
    s = res["Summary"]
    assert s["frames"] == 8 and s["clips"] == 2
    assert s["expression_mae_all"] == 0.0 and s["identity_consistency_mae"] == 0.0
    assert s["identity_vs_truth_mesh_rms_mm"] == 0.0
    assert s["pose_geodesic_mean_deg"] < 1e-2
    # Landmarks of the ground-truth coefficients, projected at 32 px and scaled to 64 px.
    assert s["nme_percent"] < 0.05


def test_known_offsets_give_the_expected_errors(model, split):
    gt = split[1]
    res = _evaluate(model, split, FakePredictor(model, gt, identity_step=0.05,
                                                expression_drop=0.1, yaw_deg=2.0))
    s = res["Summary"]
    active = gt.expression > 0.8
    assert active.any()
    assert s["expression_mae_active"] == pytest.approx(0.1, abs=1e-6)
    assert s["expression_mae_all"] == pytest.approx(0.1 * active.mean(), abs=1e-6)
    cats = res["Expression MAE (ten categories)"]["categories"]
    finite = [v["mae"] for v in cats.values() if np.isfinite(v["mae"])]
    assert finite and np.allclose(finite, 0.1, atol=1e-6)
    # Identity drifts by 0.05 per frame: Fig. 5 curve 0, 0.05, 0.10, 0.15; mean after frame 0.
    ic = res["Identity consistency"]
    np.testing.assert_allclose(ic["coefficient_mae"], [0.0, 0.05, 0.10, 0.15], atol=1e-6)
    assert ic["coefficient_mae_mean"] == pytest.approx(0.10, abs=1e-6)
    rms = np.array(ic["mesh_rms_mm"])
    np.testing.assert_allclose(rms[2:], rms[1] * np.array([2.0, 3.0]), rtol=1e-6)
    assert rms[1] > 0
    assert s["identity_vs_truth_mae"] == pytest.approx(0.075, abs=1e-6)
    pose = res["Pose error"]
    assert pose["geodesic_mean_deg"] == pytest.approx(2.0, abs=1e-3)
    assert pose["yaw_mae_deg"] == pytest.approx(2.0, abs=1e-3)
    assert pose["pitch_mae_deg"] < 1e-4
    assert s["nme_percent"] > 0.1   # the turned head moves the landmarks


def test_cli_checkpoint_writes_report(model, split, tmp_path, monkeypatch, capsys):
    from cpem_jax.cli.main import main
    from cpem_jax.estimation import network as predictor_lib
    path, gt = split
    workdir = tmp_path / "run"
    workdir.mkdir()
    monkeypatch.setattr(predictor_lib.NetPredictor, "from_workdir",
                        classmethod(lambda cls, w, f=None: FakePredictor(
                            model, gt, expression_drop=0.1)))
    out = tmp_path / "report"
    assert main(["evaluate", "--checkpoint", str(workdir), "--data", path, "--out", str(out),
                 "--batch-size", "5"]) == 0
    data = json.loads((out / "results.json").read_text())["results"]
    assert data["Summary"]["expression_mae_active"] == pytest.approx(0.1, abs=1e-6)
    md = (out / "results.md").read_text()
    assert "Identity consistency" in md and "Landmark NME by yaw" in md
    assert sorted(p.name for p in out.glob("*.png"))   # plots written
    assert (out / "identity_consistency.png").is_file()
    assert "results.md" in capsys.readouterr().out


def test_cli_fit_result_of_one_clip(model, split, tmp_path):
    from cpem_jax.cli.main import main
    from cpem_jax.estimation import VideoEstimate
    from cpem_jax.export.coefficients import save_coefficients
    from cpem_jax.geometry.camera import crop_camera
    path, gt = split
    rows = gt.clip_rows()[1]
    n = len(rows)
    x = gt.expression[rows]
    track = VideoEstimate(
        frame_index=np.arange(n), timestamp_s=np.arange(n) / 25.0, face_found=np.ones(n, bool),
        expression=np.where(x > 0.8, x - 0.1, x), rotation=gt.rotation[rows],
        translation=gt.translation[rows], lighting=gt.lighting[rows],
        identity=gt.identity[rows[0]], albedo=gt.albedo[rows[0]],
        crop_affine=np.tile(np.eye(2, 3)[None], (n, 1, 1)),
        landmarks_detected=gt.landmarks[rows], landmarks_fitted=gt.landmarks[rows],
        camera=crop_camera(SIZE, gt.focal_px / SIZE, gt.distance_cm), unit_names=gt.unit_names,
        fps=25.0, face_model=gt.face_model, method="fit")
    npz, _ = save_coefficients(track, str(tmp_path / "fit" / "coefficients"))
    out = tmp_path / "report"
    assert main(["evaluate", "--fit-result", npz, "--clip", gt.person_id[rows[0]],
                 "--data", path, "--out", str(out)]) == 0
    summary = json.loads((out / "results.json").read_text())["results"]["Summary"]
    assert summary["frames"] == n and summary["clips"] == 1
    assert summary["identity_consistency_mae"] == 0.0 and summary["nme_percent"] == 0.0
    if (x > 0.8).any():
        assert summary["expression_mae_active"] == pytest.approx(0.1, abs=1e-6)
    assert main(["evaluate", "--fit-result", npz, "--data", path, "--out", str(out)]) == 2


def test_cli_method_fit_runs(model, split, tmp_path):
    from cpem_jax.cli.main import main
    path, _ = split
    out = tmp_path / "fit_report"
    assert main(["evaluate", "--method", "fit", "--data", path, "--out", str(out),
                 "--max-clips", "1", "--no-photometric", "--iterations-scale", "0.05"]) == 0
    summary = json.loads((out / "results.json").read_text())["results"]["Summary"]
    assert summary["clips"] == 1 and summary["frames"] == 4
    assert summary["identity_consistency_mae"] == 0.0   # one identity per video
    assert summary["nme_percent"] < 50.0


def test_cli_errors_are_one_line_exit_2(split, tmp_path, capsys):
    from cpem_jax.cli.main import main
    path, _ = split
    rc = main(["evaluate", "--checkpoint", str(tmp_path / "missing"), "--data", path,
               "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "does not exist" in err and len(err.splitlines()) == 1
    plain = tmp_path / "plain"
    (plain / "data").mkdir(parents=True)
    rc = main(["evaluate", "--checkpoint", str(tmp_path), "--data", str(plain),
               "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "ground_truth.npz" in err and len(err.splitlines()) == 1

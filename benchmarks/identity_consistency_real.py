"""Identity consistency of trained networks on real clips (the paper's Fig. 5, no ground truth).

    python benchmarks/identity_consistency_real.py --runs vanilla=RUN_A idc=RUN_B both=RUN_C \
        --data ../shared/data/cpem-demo/voxceleb2 --out experiments/ablation

For every clip of the CPEM-layout folder, each network predicts the identity of every frame (in
natural frame order); the curve is the MAE of each frame's identity coefficients against the
first frame's, averaged over clips per frame index, plus the RMS distance of the identity-only
meshes in mm. Writes identity_real.json and identity_real.png.
"""
import argparse
import json
import os

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cpem_jax.data.cpem_folder import build_index, read_image  # noqa: E402
from cpem_jax.evaluation.identity import identity_consistency  # noqa: E402
from cpem_jax.estimation.network import NetPredictor  # noqa: E402


def clip_identities(predictor: NetPredictor, index) -> list:
    size = predictor.image_size
    out = []
    for clip in index.clips:
        images = np.stack([cv2.resize(read_image(index.frames[i].image_path), (size, size),
                                      interpolation=cv2.INTER_AREA) for i in clip.frame_ids])
        out.append(np.asarray(predictor(images.astype(np.float32)).identity, np.float64))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", required=True, help="label=training workdir")
    parser.add_argument("--data", required=True, help="CPEM-layout folder of real clips")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    index = build_index(args.data)
    results = {}
    for spec in args.runs:
        label, workdir = spec.split("=", 1)
        predictor = NetPredictor.from_workdir(workdir)
        curves = identity_consistency(clip_identities(predictor, index),
                                      np.asarray(predictor.model.id_basis))
        results[label] = curves
        print(label, "coefficient MAE", round(curves["coefficient_mae_mean"], 4),
              "mesh RMS mm", round(curves["mesh_rms_mm_mean"], 3), flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "identity_real.json"), "w") as f:
        json.dump({"data": args.data, "clips": len(index.clips), "runs": results}, f, indent=1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for label, curves in results.items():
        axes[0].plot(curves["frame_index"], curves["coefficient_mae"], marker="o", ms=3,
                     label=label)
        axes[1].plot(curves["frame_index"], curves["mesh_rms_mm"], marker="o", ms=3, label=label)
    axes[0].set(title="identity coefficient MAE vs frame 0", xlabel="frame index")
    axes[1].set(title="identity-only mesh RMS vs frame 0 (mm)", xlabel="frame index")
    for ax in axes:
        ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "identity_real.png"), dpi=90)


if __name__ == "__main__":
    main()

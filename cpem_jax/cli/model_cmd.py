"""`cpem-jax model ...`: convert, inspect, preview and fetch face models."""
from __future__ import annotations

import argparse
import os

import cv2


def register(subparsers) -> None:
    model = subparsers.add_parser("model", help="convert, inspect, preview or fetch a face model")
    sub = model.add_subparsers(dest="model_command", required=True)

    convert = sub.add_parser("convert", help="convert ICT-FaceKit (zip or folder) or BFM09 "
                             "(+ expression basis) into a fast-loading .npz")
    convert.add_argument("source", nargs="?", help="ICT-FaceKit-master.zip or its folder")
    convert.add_argument("-o", "--output", required=True, help="output .npz")
    convert.add_argument("--area", default="narrow", choices=["narrow", "full"],
                         help="ICT face area to keep (default: narrow)")
    convert.add_argument("--n-identity", type=int, default=None,
                         help="keep the first N identity modes (default: all)")
    convert.add_argument("--bfm", help="Deep3DFaceRecon's BFM_model_front.mat (instead of ICT)")
    convert.add_argument("--bfm-expression", help="expression basis for --bfm (.npz/.npy/.mat)")
    convert.set_defaults(func=_convert)

    info = sub.add_parser("info", help="print a model's sizes and expression units")
    info.add_argument("--face-model", help="model .npz or ICT archive (default: CPEM_FACE_MODEL "
                      "or the ICT archive in ../shared/assets)")
    info.set_defaults(func=_info)

    preview = sub.add_parser("preview", help="save a PNG of the neutral face and expressions "
                             "with the 68 landmarks drawn")
    preview.add_argument("--face-model", help="as for `info`")
    preview.add_argument("-o", "--output", default="face_model_preview.png")
    preview.add_argument("--expressions", default="jawOpen,mouthSmile_L,eyeBlink_R",
                         help="comma-separated unit names (default: %(default)s)")
    preview.add_argument("--size", type=int, default=320, help="panel size in pixels")
    preview.set_defaults(func=_preview)

    fetch = sub.add_parser("fetch-ict", help="download ICT-FaceKit from its public repository")
    fetch.add_argument("destination", nargs="?", default=".",
                       help="folder or .zip path (default: current folder)")
    fetch.set_defaults(func=_fetch)

    task = sub.add_parser("fetch-landmarker", help="download MediaPipe's face_landmarker.task "
                          "(the dense front end's model bundle) and check its sha256")
    task.add_argument("destination", nargs="?", default=None,
                      help="folder or file path (default: the cache folder, where every "
                      "command finds it)")
    task.add_argument("--url", default=None, help="another place to download the same file "
                      "from (a mirror; default: Google's published bundle)")
    task.set_defaults(func=_fetch_landmarker)

    export = sub.add_parser("export-net", help="write a training run's network as one weights "
                            "file (float16 msgpack + .json) for --method net --checkpoint FILE")
    export.add_argument("workdir", help="training workdir (config.json + checkpoints/)")
    export.add_argument("-o", "--output", required=True, help="output .msgpack")
    export.add_argument("--note", default="", help="provenance kept in the .json (e.g. the "
                        "command and commit that trained it)")
    export.set_defaults(func=_export_net)


def _describe(model) -> str:
    return (f"{model.name}: {model.n_vertices} vertices, {model.n_triangles} triangles, "
            f"{model.n_identity} identity, {model.n_expression} expression, "
            f"{model.n_albedo} albedo coefficients, {len(model.contradictory_pairs)} "
            f"contradictory pairs")


def _convert(args: argparse.Namespace) -> int:
    from cpem_jax.face_model import bfm, cache, ict
    if args.bfm:
        if not args.bfm_expression:
            raise ValueError("--bfm needs --bfm-expression (the expression basis in BFM "
                             "topology; BFM_model_front.mat has no FACS blendshapes)")
        model = bfm.load_bfm(args.bfm, args.bfm_expression)
    else:
        source = args.source or ict.default_ict_path()
        if not source:
            raise FileNotFoundError("give the ICT-FaceKit archive or folder to convert "
                                    "(`cpem-jax model fetch-ict` downloads it)")
        model = ict.load_ict(source, area=args.area, n_identity=args.n_identity)
    path = cache.save_model(model, args.output)
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB)")
    print(_describe(model))
    return 0


def _info(args: argparse.Namespace) -> int:
    from cpem_jax.face_model import load_face_model
    model = load_face_model(args.face_model)
    print(_describe(model))
    print("expression units:", ", ".join(model.expression_names))
    return 0


def _preview(args: argparse.Namespace) -> int:
    from cpem_jax.face_model import load_face_model
    from cpem_jax.viz.preview import preview_sheet
    model = load_face_model(args.face_model)
    names = [n.strip() for n in args.expressions.split(",") if n.strip()]
    for name in names:
        model.expression_index(name)  # Unknown names fail before any work.
    sheet = preview_sheet(model, names, args.size)
    if not cv2.imwrite(args.output, sheet[..., ::-1]):
        raise OSError(f"could not write {args.output!r}")
    print(f"wrote {args.output} ({sheet.shape[1]}x{sheet.shape[0]})")
    return 0


def _export_net(args: argparse.Namespace) -> int:
    from cpem_jax.estimation.net_weights import export_weights
    if not args.output.endswith(".msgpack"):
        raise ValueError(f"--output {args.output!r} must end in .msgpack (its .json goes beside "
                         f"it)")
    meta = export_weights(args.workdir, args.output,
                          provenance={"workdir": os.path.abspath(args.workdir),
                                      "note": args.note})
    print(f"wrote {args.output} ({meta['bytes'] / 1e6:.1f} MB, {meta['parameters']} parameters, "
          f"step {meta['step']})")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from cpem_jax.face_model.fetch import FetchError, fetch_ict
    try:
        path = fetch_ict(args.destination)
    except FetchError as err:
        raise RuntimeError(str(err)) from None
    print(f"downloaded {path}; convert it with `cpem-jax model convert {path} -o ict.npz`")
    return 0


def _fetch_landmarker(args: argparse.Namespace) -> int:
    from cpem_jax.detect.mediapipe_task import TASK_ENV, TASK_URL, download_task
    path = download_task(args.destination, url=args.url or TASK_URL)
    found = "every command finds it there" if args.destination is None else (
        f"pass --landmarker-task {path} or set {TASK_ENV}={path}")
    print(f"downloaded {path} (sha256 checked); {found}")
    return 0

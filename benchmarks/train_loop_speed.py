"""Steps/s of the training loop, two code trees interleaved on the same machine load.

    python benchmarks/train_loop_speed.py --trees old=/tmp/base new=. \
        --data-root /work/shared/data/cpem-demo --steps 80 --rounds 2

Each run is `python -m cpem_jax.main --config=configs/cpu.py` from that tree (PYTHONPATH set to
it) in a fresh workdir with --config.total_steps=STEPS and --config.log_every=10; the other
intervals are cpu.py's (eval every 50 steps over 10 batches, images at step 1 and every 100,
checkpoints every 100 and at the end). Runs alternate tree by tree (old, new, old, new, ...).

Both loops log `train/clips_per_second` at each log step: clips of the window / wall seconds
since the previous log step. Steps/s = clips/s / data.batch_clips. The first window (compiling
the step) is left out; "median" is the median window, "mean" is the steps of the remaining
windows over their summed seconds (evaluation pauses included). The load average is read
before and after each run. Prints one line per run and a Markdown table.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

BATCH_CLIPS = 2  # configs/cpu.py's data.batch_clips.


def commit(tree: str) -> str:
    """Short commit of `tree`, with '+changes' when its working tree differs from it."""
    def git(*args):
        return subprocess.run(["git", "-C", tree, *args], capture_output=True,
                              text=True).stdout.strip()
    head = git("rev-parse", "--short", "HEAD") or "?"
    return head + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def run_once(tree: str, data_root: str, steps: int, log_every: int, workdir: str,
             log_path: str) -> dict:
    """One training run; returns its windows' steps/s, wall seconds and load averages."""
    cmd = [sys.executable, "-m", "cpem_jax.main", "--config=configs/cpu.py",
           f"--workdir={workdir}", f"--config.data.root={data_root}",
           f"--config.total_steps={steps}", f"--config.log_every={log_every}"]
    env = dict(os.environ, PYTHONPATH=tree)
    load_before = os.getloadavg()
    start = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.run(cmd, cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    load_after = os.getloadavg()
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} (in {tree}) failed with status {proc.returncode};"
                           f" see {log_path}")
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    windows = [(r["step"], r["train/clips_per_second"] / BATCH_CLIPS) for r in rows
               if "train/clips_per_second" in r]
    with open(log_path) as f:
        perceptual_off = "perceptual loss OFF" in f.read()
    return {"cmd": " ".join(cmd), "wall_s": wall, "windows": windows,
            "load_before": load_before, "load_after": load_after,
            "perceptual_off": perceptual_off}


def summarise(run: dict) -> dict:
    """Median and mean steps/s over the windows after the first."""
    steady = run["windows"][1:]
    rates = [rate for _, rate in steady]
    steps = [step - prev for (step, _), (prev, _) in zip(steady, run["windows"])]
    seconds = sum(n / rate for n, rate in zip(steps, rates))
    return {"median": statistics.median(rates), "mean": sum(steps) / seconds,
            "n_windows": len(rates)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", nargs="+", default=["old=/tmp/base", "new=."],
                        help="label=path of each code tree, run in this order every round")
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default="", help="optional JSON file for every figure")
    args = parser.parse_args()

    trees = [(label, os.path.abspath(path)) for label, path in
             (item.split("=", 1) for item in args.trees)]
    for label, path in trees:
        print(f"{label}: {path} at {commit(path)}", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="train_loop_speed_") as scratch:
        for round_index in range(args.rounds):
            for label, path in trees:
                name = f"{label}{round_index}"
                run = run_once(path, os.path.abspath(args.data_root), args.steps,
                               args.log_every, os.path.join(scratch, name),
                               os.path.join(scratch, name + ".log"))
                run.update(label=label, round=round_index, **summarise(run))
                results.append(run)
                print(f"{name}: median {run['median']:.3f} steps/s, mean {run['mean']:.3f} "
                      f"steps/s over {run['n_windows']} windows; wall {run['wall_s']:.0f} s; load "
                      f"{run['load_before'][0]:.2f} -> {run['load_after'][0]:.2f}"
                      f"{'; perceptual OFF' if run['perceptual_off'] else ''}", flush=True)
    print("\n| run | tree | median steps/s | mean steps/s | wall s | load 1-min before -> after |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['round'] + 1} | {r['label']} | {r['median']:.3f} | {r['mean']:.3f} | "
              f"{r['wall_s']:.0f} | {r['load_before'][0]:.2f} -> {r['load_after'][0]:.2f} |")
    for label, _ in trees:
        mine = [r for r in results if r["label"] == label]
        print(f"{label}: median of medians {statistics.median(r['median'] for r in mine):.3f}"
              f" steps/s, mean of means {statistics.mean(r['mean'] for r in mine):.3f} steps/s")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()

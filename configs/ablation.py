"""The paper's ablation: no L_idc and no L_exp ("vanilla"), L_idc only ("idc"), both ("both").

    python -m cpem_jax.main --config=configs/ablation.py:vanilla --workdir=runs/vanilla
    python -m cpem_jax.main --config=configs/ablation.py:idc-cpu --workdir=runs/idc-cpu \
        --config.data.root=../shared/data/cpem-demo

The argument is the variant, optionally followed by "-cpu" to start from configs/cpu.py instead
of the paper setting (configs/default.py).
"""
from configs import cpu, default

VARIANTS = {"vanilla": (0.0, 0.0), "idc": (1000.0, 0.0), "both": (1000.0, 10.0)}


def get_config(arg: str = "both"):
    variant, _, base = arg.partition("-")
    if variant not in VARIANTS or base not in ("", "cpu"):
        raise ValueError(f"unknown ablation {arg!r}; use one of "
                         f"{sorted(VARIANTS)} optionally followed by '-cpu'")
    c = cpu.get_config() if base == "cpu" else default.get_config()
    c.loss.idc, c.loss.exp = VARIANTS[variant]
    return c

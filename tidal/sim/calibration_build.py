"""Regenerate :mod:`tidal.sim.vidur_tables` from the Vidur profiling data in ``../shared``.

The simulator must run without ``../shared`` (``make demo``), so the measured
operator times it uses are condensed into a small generated Python module that
ships with the package. This script is the only code that reads the raw CSVs;
rerun it when the profiling data changes::

    python -m tidal.sim.calibration_build            # writes tidal/sim/vidur_tables.py

Condensing: per (GPU, profiled model, TP degree) and per operator group, the
median time of one layer (milliseconds) at a fixed grid of token counts. Rows
repeated in the source are averaged. Operator groups are summed so that each
group scales with one weight-matrix size when the table is transferred to a
model that was not profiled (see ``tidal/sim/perf_model.py``).
"""

from __future__ import annotations

import csv
import os
import sys
from collections import defaultdict
from pathlib import Path

from tidal.sim.traces.locations import shared_dir

# Token counts at which the per-layer operator times are kept (Vidur profiles
# 1..4096 in steps of 8; this grid keeps the curvature at small counts where
# kernels are launch/memory bound and the linear regime above ~512).
TOKEN_GRID = (1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024,
              1536, 2048, 3072, 4096)

# Operator group -> Vidur operator columns summed into it (count per layer).
OPERATOR_GROUPS: dict[str, tuple[tuple[str, int], ...]] = {
    "qkv_proj": (("attn_pre_proj", 1),),
    "out_proj": (("attn_post_proj", 1),),
    "mlp_up": (("mlp_up_proj", 1),),
    "mlp_down": (("mlp_down_proj", 1),),
    "mlp_act": (("mlp_act", 1),),
    # two RMSNorms, rotary embedding and two residual adds per decoder layer
    "elementwise": (("input_layernorm", 1), ("post_attention_layernorm", 1),
                    ("attn_rope", 1), ("add", 2)),
    "embedding": (("emb", 1),),   # once per iteration, not per layer
}

PROFILED = {
    "a100": ("meta-llama/Llama-2-7b-hf", "meta-llama/Llama-2-70b-hf", "microsoft/phi-2"),
    "h100": ("meta-llama/Llama-2-7b-hf", "meta-llama/Llama-2-70b-hf", "microsoft/phi-2"),
    "a40": ("meta-llama/Llama-2-7b-hf", "meta-llama/Llama-2-70b-hf", "microsoft/phi-2"),
}
ALL_REDUCE_SETUPS = {"a100": "a100_dgx", "h100": "h100_dgx"}
ALL_REDUCE_SIZE_GRID_BYTES = (2048, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)


def _interp(xs: list[float], ys: list[float], x: float) -> float:
    if x <= xs[0]:
        return ys[0]
    for i in range(1, len(xs)):
        if x <= xs[i]:
            f = (x - xs[i - 1]) / (xs[i] - xs[i - 1])
            return ys[i - 1] + f * (ys[i] - ys[i - 1])
    return ys[-1]


def _compute_tables(root: Path) -> dict:
    out: dict = {}
    for gpu, models in PROFILED.items():
        for model in models:
            path = root / "compute" / gpu / model / "mlp.csv"
            sums: dict[tuple[int, int], dict[str, float]] = defaultdict(lambda: defaultdict(float))
            counts: dict[tuple[int, int], int] = defaultdict(int)
            with path.open(newline="") as fh:
                reader = csv.DictReader(fh)
                # An operator a model does not have (phi-2: one shared layer norm) is absent
                # from the header altogether; it contributes nothing rather than an error.
                present = {op for ops in OPERATOR_GROUPS.values() for op, _ in ops
                           if f"time_stats.{op}.median" in (reader.fieldnames or ())}
                for line_no, row in enumerate(reader, start=2):
                    try:
                        key = (int(row["num_tensor_parallel_workers"]), int(row["num_tokens"]))
                        for group, ops in OPERATOR_GROUPS.items():
                            sums[key][group] += sum(
                                n * float(row[f"time_stats.{op}.median"])
                                for op, n in ops if op in present)
                    except (KeyError, ValueError) as exc:
                        raise ValueError(f"{path}:{line_no}: bad profiling row ({exc})") from exc
                    counts[key] += 1
            for tp in sorted({k[0] for k in sums}):
                tokens = sorted(t for (p, t) in sums if p == tp)
                table = {}
                for group in OPERATOR_GROUPS:
                    ys = [sums[(tp, t)][group] / counts[(tp, t)] for t in tokens]
                    table[group] = tuple(round(_interp(tokens, ys, g), 5) for g in TOKEN_GRID)
                out[(gpu, model.split("/")[1], tp)] = table
    return out


def _all_reduce_tables(root: Path) -> dict:
    out: dict = {}
    for gpu, setup in ALL_REDUCE_SETUPS.items():
        path = root / "network" / setup / "all_reduce.csv"
        acc: dict[int, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                workers = int(row["num_workers"])
                if int(row["devices_per_node"]) != workers:
                    continue          # keep single-node (NVLink) setups only
                acc[workers][int(row["size"])].append(float(row["time_stats.all_reduce.median"]))
        for workers, by_size in acc.items():
            sizes = sorted(by_size)
            ys = [sum(by_size[s]) / len(by_size[s]) for s in sizes]
            # Small messages are latency-bound and noisy (a 2 KiB reduce measured slower
            # than a 16 KiB one); a larger message never takes less time, so take the
            # running minimum from the large end to make the curve monotone.
            for i in range(len(ys) - 2, -1, -1):
                ys[i] = min(ys[i], ys[i + 1])
            out[(gpu, workers)] = tuple(
                round(_interp(sizes, ys, s), 5) for s in ALL_REDUCE_SIZE_GRID_BYTES)
    return out


def render(root: Path) -> str:
    compute = _compute_tables(root)
    reduce_ = _all_reduce_tables(root)
    commit = (root / "SOURCE_COMMIT").read_text().strip() if (root / "SOURCE_COMMIT").exists() else "?"
    lines = [
        '"""GENERATED by ``python -m tidal.sim.calibration_build`` -- do not edit by hand.',
        "",
        "Median per-layer operator times (ms) measured by Microsoft's Vidur project",
        f"(MIT licence; profiling data commit {commit}), condensed to a token grid.",
        "Keys: (gpu, profiled model, tensor-parallel degree) -> operator group -> times",
        "at TOKEN_GRID. ALL_REDUCE_MS: (gpu, workers) -> times at ALL_REDUCE_SIZE_GRID_BYTES",
        "(single-node NVLink all-reduce).",
        '"""',
        "",
        f"TOKEN_GRID = {TOKEN_GRID!r}",
        f"ALL_REDUCE_SIZE_GRID_BYTES = {ALL_REDUCE_SIZE_GRID_BYTES!r}",
        "",
        "OPERATOR_MS = {",
    ]
    for key in sorted(compute):
        lines.append(f"    {key!r}: {{")
        for group, ys in compute[key].items():
            lines.append(f"        {group!r}: {ys!r},")
        lines.append("    },")
    lines.append("}")
    lines.append("")
    lines.append("ALL_REDUCE_MS = {")
    for key in sorted(reduce_):
        lines.append(f"    {key!r}: {reduce_[key]!r},")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> None:
    root = shared_dir() / "calibration" / "vidur-profiling"
    if not root.is_dir():
        sys.exit(f"Vidur profiling data not found at {root}; set TIDAL_SHARED to the shared folder")
    target = Path(__file__).with_name("vidur_tables.py")
    target.write_text(render(root))
    print(f"wrote {target} ({os.path.getsize(target)} bytes)")


if __name__ == "__main__":
    main()

"""Cut the bundled demo trace out of the Azure LLM 2023 ``conv`` trace.

The excerpt is a verbatim run of consecutive rows (header kept), so the normal
loader reads it and every row can be checked against the public file. Rerun
after changing the window:

    .venv/bin/python scripts/make_demo_trace.py            # reads ../shared/traces

The window (minutes 20-32 after the trace's first request) covers the trace's
climb from about 5.8 to 8.5 requests/s, so a demo shows the autoscaler
reacting to growing load. Source: Microsoft Azure public dataset, Azure LLM
inference trace 2023, CC-BY-4.0.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta
from pathlib import Path

from tidal.sim.traces.locations import DEMO_TRACE_FILE, traces_dir

SOURCE_FILE = "azure-llm-2023/AzureLLMInferenceTrace_conv.csv"
WINDOW_START_MIN = 20
WINDOW_MINUTES = 12
SIZE_LIMIT_BYTES = 1_000_000  # the bound for shipped data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=None, help="folder holding traces/")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "tidal" / "data" / "traces" / DEMO_TRACE_FILE,
    )
    args = parser.parse_args()
    source = traces_dir(args.shared) / SOURCE_FILE
    lines = source.read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], lines[1:]
    first = datetime.fromisoformat(rows[0].split(",")[0])
    start = first + timedelta(minutes=WINDOW_START_MIN)
    end = start + timedelta(minutes=WINDOW_MINUTES)
    kept = [row for row in rows if start <= datetime.fromisoformat(row.split(",")[0]) < end]
    text = "\n".join([header, *kept]) + "\n"
    if len(text.encode()) > SIZE_LIMIT_BYTES:
        raise SystemExit(f"excerpt is {len(text.encode())} bytes, over {SIZE_LIMIT_BYTES}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {len(kept)} requests, {len(text.encode())} bytes to {args.out}")


if __name__ == "__main__":
    main()

"""KV-cache TTL from the engine's signal: the TTL ``ttl: auto`` learns in the operator from vLLM's
KV-block residency histograms (``--kv-cache-metrics``), against the prior's (0, ``lru``), tidal
learning the pauses themselves (``tidal``, one TTL for every turn, as the signal has no categories)
and the best single TTL in hindsight, in the KV-TTL bench's accounting replay
(tidal/bench/kv_ttl.py ``signal_suite``). ``signal-end``: the TTL after learning the whole replay's
histograms; ``signal-online``: the TTL in force at each turn's end, from the decision core's own
function fed every tick's window (docs/kv-ttl.md, "What the operator learns pauses from").
Needs ../shared/traces for Mooncake (skipped with a message otherwise).

    .venv/bin/python bench/kv_ttl_signal.py [--seed 0] [--replicas 4]
"""

from __future__ import annotations

import argparse
import sys

from tidal.bench.kv_ttl import KVBenchSetup, session_parents, signal_suite
from tidal.sim.traces import TraceNotFoundError, synthetic_agent_sessions
from tidal.sim.traces.locations import traces_dir
from tidal.sim.traces.mooncake import load_mooncake
from tidal.sim.traces.registry import AGENT_DEFAULT_SESSIONS, MOONCAKE_FILE
from tidal.sim.traces.sessions import link_prefix_sessions, parent_requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--replicas", type=int, default=4)
    args = parser.parse_args()
    setup = KVBenchSetup(replicas=args.replicas, seed=args.seed)
    agent = synthetic_agent_sessions(seed=args.seed, sessions=AGENT_DEFAULT_SESSIONS)
    workloads = [("agent", agent, session_parents(agent), True)]
    try:
        mooncake = link_prefix_sessions(load_mooncake(traces_dir() / MOONCAKE_FILE))
        workloads.append(("mooncake", mooncake, parent_requests(mooncake), False))
    except TraceNotFoundError as exc:
        print(f"mooncake skipped: {exc}")
    for name, requests, parents, closed_loop in workloads:
        rows, info = signal_suite(requests, parents, setup, closed_loop=closed_loop)
        print(f"\n## {name}: {setup.model} on {setup.replicas} x {setup.accelerator}, break-even hold "
              f"{info['break_even_hold_s']:.1f} s\n")
        print("| policy | TTL s | net Mtok | of oracle | hit |")
        print("|---|---|---|---|---|")
        ttls = {"tidal": next(iter(info["tidal_ttls_s"].values()), 0.0),
                "hindsight": next(iter(info["hindsight_ttls_s"].values()), 0.0)}
        for row in rows:
            ttl = row.get("ttl_s", ttls.get(str(row["policy"])))
            print(f"| {row['policy']} | {'' if ttl is None else f'{ttl:.1f}'} | "
                  f"{row['net_benefit_tokens'] * 1e-6:.2f} | {row['of_oracle']:.0%} | {row['hit_ratio']:.2f} |")
        s, online = info["signal"], info["signal_online"]
        print(f"\nreuse gaps learnt {s['reuse_gaps']:.0f} (block-weighted), censored {s['censored']:.0f}; "
              f"online: {online['ticks_pinning']} of {online['ticks']} ticks pinned, max TTL {online['max_ttl_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

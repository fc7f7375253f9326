"""The bench's warm-up: copies renumbered apart from the trace, and only the trace scored."""

from __future__ import annotations

from tidal.bench.policies import PolicyContext, PolicySpec, build_policy
from tidal.bench.tidal_policy import bench_manifests
from tidal.bench.warmup import scored, with_warmup
from tidal.policies.baselines.fixed import FixedReplicas
from tidal.sim.runner import SLO, SimConfig, Simulation
from tidal.sim.traces import LLMRequest


def _trace() -> list[LLMRequest]:
    return [LLMRequest(arrival_s=float(t), prompt_tokens=200, output_tokens=20, hash_ids=(t % 3,),
                       session_id=t % 2, request_id=t) for t in range(0, 120, 2)]


def test_warmup_copies_the_head_renumbered_and_shifts_the_trace() -> None:
    trace = _trace()
    out = with_warmup(trace, 30.0)
    head, rest = out[:15], out[15:]
    assert [r.arrival_s for r in head] == [r.arrival_s for r in trace if r.arrival_s < 30]
    assert [r.arrival_s for r in rest] == [r.arrival_s + 30 for r in trace]
    assert not {r.request_id for r in head} & {r.request_id for r in rest}
    assert not {r.session_id for r in head} & {r.session_id for r in rest}
    assert not {h for r in head for h in r.hash_ids} & {h for r in rest for h in r.hash_ids}
    assert with_warmup(trace, 0.0) == tuple(trace)


def test_only_the_trace_is_scored() -> None:
    trace = _trace()
    config = SimConfig(initial_replicas={"unified": 1}, slo=SLO(ttft_s=5.0, tpot_s=1.0))
    result = Simulation(list(with_warmup(trace, 30.0)), FixedReplicas({"unified": 1}), config).run()
    row = scored(result, 30.0, len(trace), 1)
    assert row["slo_attainment"] == 1.0 and row["unfinished"] == 0
    whole_s = result.summary["gpu_hours"] * 3600
    assert abs(row["gpu_hours"] * 3600 - (whole_s - 30.0)) < 1e-6, "GPU time counted from the warm-up's end"
    half = scored(result, 30.0, 2 * len(trace), 1)
    assert half["slo_attainment"] == 0.5, "requests the replay lost count as missing"


def test_the_tidal_entry_runs_a_valid_cr_through_the_core() -> None:
    config = SimConfig(slo=SLO(ttft_s=1.0, tpot_s=0.1))
    md, acc = bench_manifests(config, 1, 4)
    assert md.spec.slo.percentile == 99 and md.spec.pools.unified.max_replicas == 4
    assert acc.spec.peak_tflops == 989
    ctx = PolicyContext(requests=_trace(), config=config, slo=None, limits=None,  # type: ignore[arg-type]
                        min_replicas=1, max_replicas=4, params={"prewarm": "false"})
    prepared = build_policy(PolicySpec("tidal", (("prewarm", "false"),)), ctx)
    assert prepared.autoscaler.wl.md.spec.autoscaling.prewarm is False
    assert prepared.latency_percentile == 0.99
    result = Simulation(_trace(), prepared.autoscaler, config).run()
    assert result.summary["finished"] == len(_trace())
    assert {r["code"] for d in result.decisions for r in d["reasons"]} & {"slo-goodput", "bounded", "planner-fallback"}

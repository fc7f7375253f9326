"""Every flag tidal renders exists in the pinned engine release's parser, and the checker catches the
mistakes it is there for."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidal.controllers.engines import ENGINE_DTYPES, ENGINES, engine_args
from tests.controllers.engine_flags import accepted, problems


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_recorded_parser_is_the_pinned_release(name) -> None:
    recorded = accepted(name)
    assert recorded["version"] == ENGINES[name].pinned_version
    assert ENGINES[name].image.endswith(f":v{recorded['version']}")
    assert recorded["source"]["repo"] and recorded["source"]["tag"] and recorded["source"]["paths"]


@pytest.mark.parametrize("name", sorted(ENGINES))
@given(dtype=st.sampled_from(sorted(ENGINE_DTYPES)), tp=st.integers(1, 64), context=st.integers(128, 10_000_000),
       port=st.integers(1, 65535), drain=st.integers(0, 86_400), kv_residency=st.booleans())
def test_every_rendered_flag_is_accepted(name, dtype, tp, context, port, drain, kv_residency) -> None:
    args = engine_args(ENGINES[name], "org/model", port, dtype, tp, context, drain, kv_residency)
    assert problems(name, args) == []


def test_vllm_exports_kv_residency_only_when_asked_and_sglang_never() -> None:
    """``kvCache.ttl: auto`` learns pauses from vLLM's residency histograms, sampled at the rate the
    simulator uses; SGLang has no such metric, so nothing is rendered for it."""
    on = engine_args(ENGINES["vllm"], "m", 8000, "bfloat16", 1, 4096, 90, kv_residency=True)
    off = engine_args(ENGINES["vllm"], "m", 8000, "bfloat16", 1, 4096, 90)
    assert "--kv-cache-metrics" in on and "--kv-cache-metrics" not in off
    assert on[on.index("--kv-cache-metrics-sample") + 1] == "0.01"
    assert engine_args(ENGINES["sglang"], "m", 8000, "bfloat16", 1, 4096, 90, kv_residency=True) == \
        engine_args(ENGINES["sglang"], "m", 8000, "bfloat16", 1, 4096, 90)


def test_vllm_drains_for_the_drain_timeout() -> None:
    args = engine_args(ENGINES["vllm"], "m", 8000, "bfloat16", 1, 4096, 90)
    assert args[args.index("--shutdown-timeout") + 1] == "90"


@pytest.mark.parametrize(("name", "args", "problem"), [
    ("vllm", ["m", "--tp-size", "2"], "--tp-size is not a vllm"),  # SGLang's spelling
    ("sglang", ["--model-path", "m", "--max-model-len", "8"], "--max-model-len is not a sglang"),
    ("sglang", ["--model-path", "m", "--shutdown-timeout", "8"], "--shutdown-timeout is not a sglang"),
    ("vllm", ["m", "--dtype", "fp8"], "--dtype fp8: not one of"),
    ("vllm", ["vllm", "serve", "m"], "unexpected positional argument 'serve'"),  # the doubled entrypoint
    ("vllm", ["m", "--port"], "--port needs a value"),
])
def test_checker_catches_wrong_flags(name, args, problem) -> None:
    assert any(p.startswith(problem) for p in problems(name, args)), problems(name, args)


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_recorded_router_parser_is_the_pinned_router_release(engine) -> None:
    from tidal.controllers.disaggregation import ROUTERS

    router = ROUTERS[engine]
    recorded = accepted(router.name)
    assert recorded["version"] == router.pinned_version
    assert router.image.rsplit(":", 1)[1].lstrip("v") == recorded["version"]
    assert recorded["source"]["repo"] and recorded["source"]["tag"] and recorded["source"]["sha256"]
    assert all(problems(router.name, [flag]) == [] or "needs a value" in problems(router.name, [flag])[0]
               for flag in router.pd_flags if flag.startswith("-"))


def test_router_checker_catches_wrong_flags() -> None:
    assert problems("smg", ["--vllm-pd-disaggregation"])  # vllm-router's spelling
    assert problems("vllm-router", ["--pd-disaggregation"])  # smg's spelling
    assert problems("smg", ["--prefill-selector"]) == ["--prefill-selector needs a value"]
    assert problems("vllm-router", ["--decode-policy", "least_load"])  # an smg policy
    assert problems("vllm-router", ["--prefill-selector", "a=b", "c=d", "--host", "0.0.0.0"]) == []

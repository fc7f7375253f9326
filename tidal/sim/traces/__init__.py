"""Trace loaders and synthetic workloads for the simulator.

Every loader returns immutable records (``LLMRequest``, ``FunctionInvocation``)
sorted by arrival time, and raises ``TraceFormatError`` naming file, line and
column on the first row it cannot read: no row is ever silently dropped.
See docs/traces.md for formats, models and their sources.
"""

from tidal.sim.traces.agent import (
    DEFAULT_AGENT_MODEL,
    DEFAULT_TOOLS,
    AgentModel,
    Lognormal,
    ToolPause,
    session_pauses,
    synthetic_agent_sessions,
)
from tidal.sim.traces.azure_functions import (
    FunctionArrivals,
    load_azure_functions,
    sample_function_arrays,
    sample_function_invocations,
)
from tidal.sim.traces.azure_llm import load_azure_llm
from tidal.sim.traces.errors import TraceFormatError, TraceNotFoundError, UnknownTraceError
from tidal.sim.traces.locations import shared_dir, traces_dir
from tidal.sim.traces.mooncake import load_mooncake
from tidal.sim.traces.records import (
    KV_BLOCK_TOKENS,
    FunctionInvocation,
    FunctionSpec,
    LLMRequest,
    RateWindow,
)
from tidal.sim.traces.registry import (
    TRACE_NAMES,
    load_demo_trace,
    load_function_trace,
    load_trace,
)
from tidal.sim.traces.servegen import load_servegen_client, sample_servegen_requests
from tidal.sim.traces.tokens import EmpiricalTokenSampler, TokenSampler, azure_conv_token_sampler
from tidal.sim.traces.transforms import rate_scale, superpose, time_window

__all__ = [
    "DEFAULT_AGENT_MODEL",
    "DEFAULT_TOOLS",
    "KV_BLOCK_TOKENS",
    "TRACE_NAMES",
    "AgentModel",
    "EmpiricalTokenSampler",
    "FunctionArrivals",
    "FunctionInvocation",
    "FunctionSpec",
    "LLMRequest",
    "Lognormal",
    "RateWindow",
    "TokenSampler",
    "ToolPause",
    "TraceFormatError",
    "TraceNotFoundError",
    "UnknownTraceError",
    "azure_conv_token_sampler",
    "load_azure_functions",
    "load_azure_llm",
    "load_demo_trace",
    "load_function_trace",
    "load_mooncake",
    "load_servegen_client",
    "load_trace",
    "rate_scale",
    "superpose",
    "sample_function_arrays",
    "sample_function_invocations",
    "sample_servegen_requests",
    "session_pauses",
    "shared_dir",
    "synthetic_agent_sessions",
    "time_window",
    "traces_dir",
]

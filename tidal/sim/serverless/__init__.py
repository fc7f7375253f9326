"""Serverless platform simulator: function instances, keep-alive, pre-warm, cold starts.

Replays Azure Functions invocations (``workload.py``) on per-function instances
(``platform.py``) under any ``Autoscaler`` of the decision core, with cold
starts drawn from the Huawei Cloud component model (``coldstart.py``), and
reports cold starts, latency against an SLO, and memory cost (``results.py``,
``report.py``). ``tidal simulate-functions`` (``tidal/sim/functions_command.py``)
is the command line.
"""

from tidal.sim.serverless.coldstart import (
    HUAWEI_R1,
    HUAWEI_R2,
    FunctionColdStartModel,
    fixed_cold_start,
    parse_cold_start,
)
from tidal.sim.serverless.observation import FunctionPoolObservation
from tidal.sim.serverless.platform import (
    ActivatorModel,
    FunctionSimConfig,
    FunctionSimResult,
    FunctionSimulation,
    FunctionSLO,
)
from tidal.sim.serverless.workload import FunctionWorkload, load_workload, workload_from_trace

__all__ = [
    "ActivatorModel",
    "HUAWEI_R1",
    "HUAWEI_R2",
    "FunctionColdStartModel",
    "FunctionPoolObservation",
    "FunctionSLO",
    "FunctionSimConfig",
    "FunctionSimResult",
    "FunctionSimulation",
    "FunctionWorkload",
    "fixed_cold_start",
    "load_workload",
    "parse_cold_start",
    "workload_from_trace",
]

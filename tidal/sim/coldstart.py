"""Cold-start model of an LLM serving pod: scheduling, image pull, weights load, engine start.

Each phase has a deterministic core from sizes and bandwidths and a multiplicative
log-normal jitter (seeded) so repeated starts differ as real ones do. Numbers
and their sources are in docs/calibration.md ("Cold start").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tidal.sim.hardware import ModelSpec


@dataclass(frozen=True)
class ColdStartParams:
    # Binding a pod that fits: ~1 s (kube-scheduler + kubelet admission).
    scheduling_s: float = 1.0
    # Fresh pull of a ~10 GB vLLM image: 30-60 s is typical; 200 MB/s effective
    # (download + decompress + snapshot) gives 50 s for 10 GB.
    image_pull_bps: float = 200e6
    # Container create/start when the image is already on the node (runtime init 2-8 s).
    container_start_s: float = 3.0
    # Weights not on the node: fetched from object storage at ~1 GB/s (same-region S3/GCS).
    remote_weights_bps: float = 1.0e9
    # Weights on node-local NVMe / page cache: read and copied to GPU at ~3 GB/s
    # (a 140 GB 70B checkpoint from local NVMe loads in 30-60 s).
    local_weights_bps: float = 3.0e9
    # vLLM process start, torch.compile / CUDA-graph capture, KV profiling: 20-60 s for
    # V1 engines; 25 s taken as a middle value for 8B-class models.
    engine_init_s: float = 25.0
    # Spread of each phase (log-normal sigma).
    jitter_sigma: float = 0.1


@dataclass(frozen=True)
class ColdStart:
    """Sampled phase durations of one pod start (seconds)."""

    scheduling_s: float
    image_s: float
    weights_s: float
    engine_init_s: float

    @property
    def total_s(self) -> float:
        return self.scheduling_s + self.image_s + self.weights_s + self.engine_init_s


def sample_cold_start(params: ColdStartParams, model: ModelSpec, *, image_cached: bool,
                      weights_cached: bool, rng: np.random.Generator) -> ColdStart:
    """Phase durations for one start of ``model`` given the node's cache state."""

    def jit(x: float) -> float:
        if params.jitter_sigma <= 0:
            return x
        return x * math.exp(rng.normal(0.0, params.jitter_sigma))

    image = (params.container_start_s if image_cached
             else model.image_bytes / params.image_pull_bps + params.container_start_s)
    weights = model.weights_bytes / params.local_weights_bps
    if not weights_cached:
        weights += model.weights_bytes / params.remote_weights_bps
    return ColdStart(scheduling_s=jit(params.scheduling_s), image_s=jit(image),
                     weights_s=jit(weights), engine_init_s=jit(params.engine_init_s))

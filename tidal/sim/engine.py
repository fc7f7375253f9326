"""Iteration-level model of one continuous-batching LLM engine replica (vLLM V1-like).

Scheduling per iteration follows vLLM's V1 scheduler with chunked prefill
(Sarathi-Serve): a token budget (``max_num_batched_tokens``) is filled first by
the running sequences (one token per decoding sequence, the next chunk of a
partially prefilled prompt), then by waiting sequences in arrival order while
budget, sequence slots (``max_num_seqs``) and KV blocks allow. When a running
sequence needs a KV block and none is free (after evicting unreferenced
prefix-cache entries), the most recently admitted running sequence is
preempted and later recomputed from scratch (vLLM's default preemption mode).

Speed: consecutive decode-only iterations with an unchanged batch are
advanced in one closed-form *run* (their times form an arithmetic series, see
:meth:`StepTimeModel.decode_run_s`) that ends at the next completion, the KV
limit, or is cut at the next iteration boundary when a request arrives.

The engine does not own a clock: the runner calls :meth:`submit` and
:meth:`wake` and reads :attr:`next_wake_s`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable, Protocol

from tidal.sim.hardware import GIB, AcceleratorSpec
from tidal.sim.perf_model import StepTimeModel
from tidal.sim.prefix_cache import MOONCAKE_HASH_BLOCK_TOKENS, PrefixCache

# vLLM engine-argument default (docs: "Engine Arguments"): block_size 16.
DEFAULT_KV_BLOCK_TOKENS = 16

# Engine versions whose scheduler limits the simulator knows, and their defaults for the
# OpenAI-compatible API server (`vllm serve`), the usage context every benchmark here uses.
#
# VLLM_V1: vLLM V1 engine, versions 0.9 to 0.27 -- vllm/engine/arg_utils.py, the default
#   batch sizes chosen from the device (EngineArgs._set_default_args, later
#   get_batch_defaults): a GPU with >= 70 GiB of memory whose name does not contain
#   "a100" (H100, H200, MI300X) gets max_num_batched_tokens 8192 and max_num_seqs 1024;
#   every other GPU 2048 and 256. The A100 exclusion is PR #17885 ("setting large
#   max_num_batched_tokens for A100 reduces throughput"). Chunked prefill is always on.
#   (v0.28 adds a third tier for >= 160 GiB parts, which this catalogue does not have.)
# VLLM_V0: vLLM 0.6.x V0 engine as benchmarked in 2024 (e.g. Lambda's vllm-benchmark):
#   max_num_seqs 256; without chunked prefill the token budget is
#   max(max_model_len, 2048), i.e. 2048 for the usual --max-model-len 2048, and a
#   waiting prompt is prefilled whole, in an iteration of its own (prefill first).
# VLLM_V05_CHUNKED: vLLM 0.5.x V0 engine started with --enable-chunked-prefill (e.g. Crusoe's
#   L40S runs on 0.5.5): with chunked prefill on and no --max-num-batched-tokens, 0.5.x's
#   SchedulerConfig sets the token budget to 512 ("the values that have the best balance
#   between ITL and TTFT on A100"); max_num_seqs 256; decodes are scheduled first, then
#   prefill chunks fill what is left of the budget (the same order as V1).
VLLM_V1 = "vllm-v1"
VLLM_V0 = "vllm-v0.6"
VLLM_V05_CHUNKED = "vllm-v0.5-chunked"
ENGINE_VERSIONS = (VLLM_V1, VLLM_V0, VLLM_V05_CHUNKED)
DEFAULT_ENGINE_VERSION = VLLM_V1
VLLM_LARGE_GPU_MEMORY_BYTES = 70 * GIB

# Engine time per iteration outside the GPU kernels in the step-time model. V1 overlaps
# scheduling and output processing with the GPU step (async scheduling, CUDA graphs),
# and the batch-1 TPOT measurements leave no room for a visible overhead beyond the
# kernel launches the measured tables already hold. vLLM 0.6 V0 (multi-step scheduling)
# shows ~0.7 ms per iteration over the tables at decode batches of 4-10 (Lambda's
# 10-prompt runs on H100 and A100, docs/calibration.md). Neither version's saturation
# measurements show an overhead that grows with the batch beyond what the operator
# tables already scale, so there is no per-sequence term.
#
# vLLM 0.5 (single-step scheduling, API server, scheduler, sampler output processing and
# detokenisation in one process, serialised with the GPU step; the overheads vLLM 0.6's
# multi-step scheduling and separate API-server process removed) is the one version whose
# measurements show an overhead growing with the batch: Crusoe's L40S runs at 1-9 requests/s
# need 0.5 ms per iteration plus 0.2 ms per scheduled sequence. Fitted on the BF16 runs at
# 1 and 9 requests/s (TPOT and TTFT); the BF16 runs at 3-7 requests/s and the FP8 runs
# check them (docs/calibration.md).
ENGINE_STEP_OVERHEAD_S = {VLLM_V1: 0.0, VLLM_V0: 0.7e-3, VLLM_V05_CHUNKED: 0.5e-3}
ENGINE_SEQ_OVERHEAD_S = {VLLM_V1: 0.0, VLLM_V0: 0.0, VLLM_V05_CHUNKED: 0.2e-3}

# Time from a request reaching the server to its scheduler seeing it: CPU-side work on
# the request path outside the GPU step model (API server, HTTP, tokenisation, hand-over
# to the engine, first output). vLLM 0.6: Lambda's 10-prompt runs measure TTFTs 28.7 ms
# above the simulated prefill on H100 and 28.7 ms on A100 -- a constant across two GPUs
# 2x apart in speed, so not GPU time. Fitted on the H100 run, checked on the A100 one
# (docs/calibration.md). vLLM V1: no published TTFT with known prompt lengths was found
# to measure it, so none is added.
# vLLM 0.5 (chunked prefill): 15 ms, fitted with the overheads above on Crusoe's L40S BF16
# runs and checked on their FP8 twins.
REQUEST_PATH_LATENCY_S = {VLLM_V1: 0.0, VLLM_V0: 28.7e-3, VLLM_V05_CHUNKED: 15e-3}

ROLE_UNIFIED = "unified"
ROLE_PREFILL = "prefill"
ROLE_DECODE = "decode"


class RequestLike(Protocol):
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    hash_ids: tuple[int, ...]
    session_id: int | None
    request_id: int


class Sequence:
    """Mutable per-request state inside the engine (and its outcome once finished)."""

    __slots__ = ("req", "arrival_s", "prompt_tokens", "output_tokens", "prefill_target",
                 "computed", "generated", "own_blocks", "shared_refs", "cached_tokens",
                 "first_token_s", "finish_s", "preemptions", "replica", "prefill_replica",
                 "transfer_s", "kv_ready_s", "admitted", "routed_s")

    def __init__(self, req: RequestLike) -> None:
        self.req = req
        self.arrival_s = req.arrival_s
        self.prompt_tokens = max(1, int(req.prompt_tokens))
        self.output_tokens = max(1, int(req.output_tokens))
        self.prefill_target = self.prompt_tokens   # tokens whose KV must exist before decoding
        self.computed = 0                            # tokens whose KV exists
        self.generated = 0                           # output tokens emitted
        self.own_blocks = 0                          # KV blocks owned (not shared via cache)
        self.shared_refs: tuple[int, ...] = ()       # prefix-cache entries referenced
        self.cached_tokens = 0                       # prompt tokens served from the prefix cache
        self.first_token_s: float | None = None
        self.finish_s: float | None = None
        self.preemptions = 0
        self.replica: int | None = None
        self.prefill_replica: int | None = None
        self.transfer_s = 0.0
        self.kv_ready_s: float | None = None
        self.admitted = False
        self.routed_s: float | None = None          # when it last reached a replica

    @property
    def in_prefill(self) -> bool:
        return self.computed < self.prefill_target

    @property
    def remaining_output(self) -> int:
        return self.output_tokens - self.generated


@dataclass(frozen=True)
class EngineLimits:
    """The scheduler limits of one engine: token budget, sequence slots, chunked prefill."""

    max_num_batched_tokens: int
    max_num_seqs: int
    chunked_prefill: bool = True


def default_engine_limits(accelerator: AcceleratorSpec,
                          engine_version: str = DEFAULT_ENGINE_VERSION) -> EngineLimits:
    """What ``vllm serve`` picks when the user sets neither limit (sources above)."""
    if engine_version == VLLM_V1:
        large = (accelerator.memory_bytes >= VLLM_LARGE_GPU_MEMORY_BYTES
                 and "a100" not in accelerator.device_name.lower())
        return EngineLimits(8192, 1024) if large else EngineLimits(2048, 256)
    if engine_version == VLLM_V0:
        return EngineLimits(2048, 256, chunked_prefill=False)
    if engine_version == VLLM_V05_CHUNKED:
        return EngineLimits(512, 256)
    raise ValueError(f"unknown engine version {engine_version!r}; "
                     f"known: {', '.join(ENGINE_VERSIONS)}")


@dataclass(frozen=True)
class EngineConfig:
    """Engine settings; ``None`` limits take the engine version's default for the GPU."""

    max_num_batched_tokens: int | None = None
    max_num_seqs: int | None = None
    engine_version: str = DEFAULT_ENGINE_VERSION
    kv_block_tokens: int = DEFAULT_KV_BLOCK_TOKENS
    enable_prefix_cache: bool = True
    prefix_block_tokens: int = MOONCAKE_HASH_BLOCK_TOKENS
    # Per-session KV pin after a turn ends (None: plain LRU). Set by a KV-TTL policy.
    session_kv_ttl_s: float | None = None
    session_kv_ttl_fn: Callable[[RequestLike, float], float | None] | None = None
    """Per-turn pin chooser ``(finished request, now_s) -> TTL seconds`` (None or 0: no pin),
    called when a session's turn finishes; replaces ``session_kv_ttl_s`` there (the KV-TTL bench
    runs a policy, fixed TTLs and the oracle through it)."""
    kv_metrics_sample: float | None = None
    """vLLM ``--kv-cache-metrics-sample``: the fraction of KV blocks whose residency the prefix cache
    reports (tidal/sim/prefix_cache.py); ``None``: ``--kv-cache-metrics`` off, nothing reported."""
    kv_metrics_seed: int = 0
    """Seed of the residency sampling (with the replica id): a replay reports the same histograms."""
    engine_speed: float = 1.0
    """The simulated engine's speed relative to its performance model: every iteration (and the
    per-step overhead) takes ``1 / engine_speed`` as long. Below 1 the engine is slower than the
    profile a planner was given, the case its online correction must handle."""

    def __post_init__(self) -> None:
        if not (isinstance(self.engine_speed, (int, float)) and 0 < self.engine_speed <= 100):
            raise ValueError(f"engine_speed must be in (0, 100] (1 = as profiled), got {self.engine_speed!r}")

    def limits(self, accelerator: AcceleratorSpec) -> EngineLimits:
        """The limits in force on ``accelerator``: explicit values over the version's defaults."""
        default = default_engine_limits(accelerator, self.engine_version)
        limits = EngineLimits(
            self.max_num_batched_tokens if self.max_num_batched_tokens is not None
            else default.max_num_batched_tokens,
            self.max_num_seqs if self.max_num_seqs is not None else default.max_num_seqs,
            default.chunked_prefill)
        if limits.max_num_seqs < 1:
            raise ValueError(f"max_num_seqs must be >= 1, got {limits.max_num_seqs}")
        if limits.max_num_batched_tokens < limits.max_num_seqs:
            raise ValueError(
                f"max_num_batched_tokens ({limits.max_num_batched_tokens}) must be >= "
                f"max_num_seqs ({limits.max_num_seqs}), as vLLM requires; raise the token "
                "budget or lower the sequence limit")
        return limits


class EngineListener(Protocol):
    def on_first_token(self, seq: Sequence, now_s: float) -> None: ...
    def on_finish(self, seq: Sequence, now_s: float) -> None: ...
    def on_prefill_done(self, seq: Sequence, now_s: float) -> None: ...
    def on_tokens(self, prompt_tokens: int, output_tokens: int, now_s: float) -> None: ...


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class Engine:
    """One replica's engine. ``role`` selects unified, prefill-only or decode-only behaviour."""

    def __init__(self, replica_id: int, perf: StepTimeModel, kv_capacity_tokens: int,
                 listener: EngineListener, config: EngineConfig = EngineConfig(),
                 role: str = ROLE_UNIFIED) -> None:
        self.id = replica_id
        self.perf = perf
        self.cfg = config
        self.role = role
        self.listener = listener
        self.limits = config.limits(perf.accelerator)
        self.slowdown = 1.0 / config.engine_speed
        self.step_overhead_s = ENGINE_STEP_OVERHEAD_S[config.engine_version] * self.slowdown
        self.seq_overhead_s = ENGINE_SEQ_OVERHEAD_S[config.engine_version] * self.slowdown
        # a decode-role request arrives as KV: it already went through an API server
        self.request_path_latency_s = (0.0 if role == ROLE_DECODE
                                       else REQUEST_PATH_LATENCY_S[config.engine_version])
        self._incoming: deque[tuple[float, Sequence]] = deque()   # (visible at, sequence)
        self.max_num_seqs = self.limits.max_num_seqs
        self.block_tokens = config.kv_block_tokens
        self.capacity_blocks = kv_capacity_tokens // config.kv_block_tokens
        if self.capacity_blocks <= 0:
            raise ValueError("KV capacity must hold at least one block")
        self.prefix_cache = (PrefixCache(kv_blocks_per_entry=config.prefix_block_tokens
                                         // config.kv_block_tokens,
                                         block_tokens=config.prefix_block_tokens,
                                         residency_sample_rate=config.kv_metrics_sample,
                                         residency_seed=(config.kv_metrics_seed, replica_id))
                             if config.enable_prefix_cache else None)
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.own_blocks_used = 0
        self.next_wake_s: float | None = None     # end of the segment in flight
        self.version = 0                          # bumps when next_wake_s changes
        self.busy_s = 0.0
        self.iterations = 0
        self.preemptions = 0
        self.peak_blocks_used = 0
        # segment in flight
        self._seg_start = 0.0
        self._seg_kind = ""                       # "step" or "run"
        self._seg_plan: list[tuple[Sequence, int]] = []
        self._run_k = 0
        self._run_coef = (0.0, 0.0)
        self._run_ctx0 = 0
        self._admission_blocked = False

    # -- public --------------------------------------------------------------------------
    @property
    def blocks_used(self) -> int:
        cache = self.prefix_cache.blocks if self.prefix_cache else 0
        return self.own_blocks_used + cache

    @property
    def kv_usage_ratio(self) -> float:
        """What vLLM exports as KV-cache usage: unreferenced cached blocks count as free."""
        ref = self.prefix_cache.referenced_blocks if self.prefix_cache else 0
        return (self.own_blocks_used + ref) / self.capacity_blocks

    @property
    def num_requests(self) -> int:
        return len(self.waiting) + len(self.running) + len(self._incoming)

    @property
    def idle(self) -> bool:
        return self.next_wake_s is None

    def submit(self, seq: Sequence, now_s: float) -> None:
        """A request reaches this replica (for decode role: its KV has arrived).

        The scheduler sees it ``request_path_latency_s`` later (the API server's share).
        """
        seq.replica = self.id
        seq.routed_s = now_s
        if self.request_path_latency_s > 0:
            visible_s = now_s + self.request_path_latency_s
            self._incoming.append((visible_s, seq))
            if self.next_wake_s is None:
                self._start_segment(now_s)
            elif len(self._incoming) == 1 and not self.waiting:
                self._cut_run_for_arrival(visible_s)
            return
        self.waiting.append(seq)
        if self.next_wake_s is None:
            self._start_segment(now_s)
        elif len(self.waiting) == 1:
            self._cut_run_for_arrival(now_s)

    def abort_all(self) -> list[Sequence]:
        """Kubernetes killed the replica (its termination grace period ran out): every request in
        it is lost. Returns them; the engine is left empty and its segment in flight cancelled."""
        lost = [seq for _, seq in self._incoming] + list(self.waiting) + list(self.running)
        self._incoming.clear()
        self.waiting.clear()
        self.running.clear()
        self.next_wake_s = None
        self.version += 1
        return lost

    def wake(self, now_s: float) -> None:
        """The segment in flight ends at ``now_s``: apply it and start the next one."""
        self._finish_segment(now_s)
        self._start_segment(now_s)

    def _cut_run_for_arrival(self, visible_s: float) -> None:
        """A request visible at ``visible_s`` could join the batch at the next boundary."""
        if (self._seg_kind == "run" and self._run_k > 1
                and len(self.running) < self.max_num_seqs):
            self._truncate_run(visible_s)

    def _admit_incoming(self, now_s: float) -> None:
        while self._incoming and self._incoming[0][0] <= now_s:
            self.waiting.append(self._incoming.popleft()[1])

    # -- KV blocks -----------------------------------------------------------------------
    def _free_blocks(self) -> int:
        return self.capacity_blocks - self.blocks_used

    def _reserve(self, blocks: int, now_s: float) -> bool:
        """Make ``blocks`` free (evicting unreferenced cache entries); False if impossible."""
        free = self._free_blocks()
        if blocks <= free:
            return True
        if self.prefix_cache is not None:
            self.prefix_cache.evict(blocks - free, now_s)
            return blocks <= self._free_blocks()
        return False

    def _grow(self, seq: Sequence, new_tokens: int, now_s: float) -> bool:
        """Allocate the blocks ``seq`` needs to hold ``new_tokens`` more tokens of KV."""
        shared = len(seq.shared_refs) * self.cfg.prefix_block_tokens
        need = _ceil_div(seq.computed + new_tokens - shared, self.block_tokens) - seq.own_blocks
        if need <= 0:
            return True
        if not self._reserve(need, now_s):
            return False
        seq.own_blocks += need
        self.own_blocks_used += need
        if self.blocks_used > self.peak_blocks_used:
            self.peak_blocks_used = self.blocks_used
        return True

    def _release(self, seq: Sequence, now_s: float, finished: bool = False) -> None:
        self.own_blocks_used -= seq.own_blocks
        seq.own_blocks = 0
        if seq.shared_refs and self.prefix_cache is not None:
            ttl = None
            if seq.req.session_id is not None:
                choose = self.cfg.session_kv_ttl_fn
                ttl = (choose(seq.req, now_s) if finished and choose is not None
                       else None if choose is not None else self.cfg.session_kv_ttl_s)
            self.prefix_cache.release(seq.shared_refs, now_s, ttl)
        seq.shared_refs = ()

    def _preempt(self, seq: Sequence, now_s: float) -> None:
        self.running.remove(seq)
        self._release(seq, now_s)
        seq.computed = 0
        seq.prefill_target = seq.prompt_tokens + seq.generated
        seq.preemptions += 1
        seq.admitted = False
        self.preemptions += 1
        self.waiting.appendleft(seq)

    # -- prefix cache ---------------------------------------------------------------------
    def _cacheable_blocks(self, seq: Sequence) -> int:
        return min(len(seq.req.hash_ids), seq.prompt_tokens // self.cfg.prefix_block_tokens)

    def _admit_prefix(self, seq: Sequence, now_s: float) -> None:
        if self.prefix_cache is None or not seq.req.hash_ids or seq.computed > 0:
            return
        n = self._cacheable_blocks(seq)
        hit = self.prefix_cache.match_and_reference(seq.req.hash_ids, n, now_s)
        if hit:
            seq.shared_refs = tuple(seq.req.hash_ids[:hit])
            # vLLM recomputes the last prompt token even on a full hit (it needs its logits)
            seq.computed = min(hit * self.cfg.prefix_block_tokens, seq.prefill_target - 1)
            seq.cached_tokens = seq.computed

    def _publish_prefix(self, seq: Sequence, now_s: float) -> None:
        """After a prompt is computed, its full hash blocks become shared cache entries."""
        if self.prefix_cache is None or not seq.req.hash_ids:
            return
        n = self._cacheable_blocks(seq)
        have = len(seq.shared_refs)
        if n <= have:
            return
        new_refs = list(seq.shared_refs)
        for h in seq.req.hash_ids[have:n]:
            self.prefix_cache.insert_referenced(h, now_s)
            new_refs.append(h)
        seq.shared_refs = tuple(new_refs)
        # the sequence's own copy of those tokens moves to (or duplicates) the cache
        shared = len(seq.shared_refs) * self.cfg.prefix_block_tokens
        own = max(0, _ceil_div(seq.computed - shared, self.block_tokens))
        self.own_blocks_used += own - seq.own_blocks
        seq.own_blocks = own

    # -- scheduling -----------------------------------------------------------------------
    def _schedule_step(self, now_s: float) -> list[tuple[Sequence, int]]:
        """Pick this iteration's (sequence, tokens) pairs, allocating KV and preempting.

        With chunked prefill (vLLM V1) the running sequences come first (a decode token
        each, or their next prompt chunk), then waiting prompts fill what is left of the
        token budget. Without it (vLLM V0) waiting prompts that fit whole are prefilled in
        an iteration of their own, before any decoding resumes.
        """
        if not self.limits.chunked_prefill and self.waiting and not self._admission_blocked_v0():
            plan = self._admit_waiting(now_s, self.limits.max_num_batched_tokens, whole=True)
            if plan:
                self._admission_blocked = False
                return plan
        budget = self.limits.max_num_batched_tokens
        plan: list[tuple[Sequence, int]] = []
        preempted = False
        i = 0
        while i < len(self.running) and budget > 0:
            seq = self.running[i]
            tokens = min(seq.prefill_target - seq.computed, budget) if seq.in_prefill else 1
            while not self._grow(seq, tokens, now_s):
                victim = self.running[-1]
                self._preempt(victim, now_s)
                plan = [(s, t) for s, t in plan if s is not victim]
                preempted = True
                if victim is seq:
                    break
            else:
                plan.append((seq, tokens))
                budget -= tokens
                i += 1
                continue
            # seq itself was preempted; the loop index already points at the next one
        self._admission_blocked = preempted
        if not preempted and self.limits.chunked_prefill:
            plan += self._admit_waiting(now_s, budget, whole=False)
        elif not preempted and self.waiting:
            self._admission_blocked = True    # V0: the prefill-first pass found no room
        return plan

    def _admission_blocked_v0(self) -> bool:
        return len(self.running) >= self.max_num_seqs

    def _admit_waiting(self, now_s: float, budget: int, *,
                       whole: bool) -> list[tuple[Sequence, int]]:
        """Admit waiting sequences in arrival order into ``budget`` tokens.

        ``whole``: a prompt is admitted only if all of it fits (no chunking).
        """
        plan: list[tuple[Sequence, int]] = []
        while self.waiting and budget > 0 and len(self.running) < self.max_num_seqs:
            seq = self.waiting[0]
            self._admit_prefix(seq, now_s)
            if seq.in_prefill:
                need = seq.prefill_target - seq.computed
                if whole and need > budget and plan:
                    break
                # (alone, a prompt longer than the whole budget is chunked rather than
                # stuck; vLLM V0 would have rejected it against max_model_len)
                tokens = min(need, budget)
            else:          # decode role: KV arrived with the request
                tokens = 1
            if not self._grow(seq, tokens, now_s):
                if seq.shared_refs and not seq.admitted:
                    self._release(seq, now_s)
                    seq.computed = 0
                    seq.cached_tokens = 0
                self._admission_blocked = True
                break
            self.waiting.popleft()
            seq.admitted = True
            self.running.append(seq)
            plan.append((seq, tokens))
            budget -= tokens
        return plan

    def _start_segment(self, now_s: float) -> None:
        self._seg_plan = []
        self._admit_incoming(now_s)
        if not self.running and not self.waiting:
            if self._incoming:              # idle until the next request is visible
                self._seg_kind = "wait"
                self._seg_start = now_s
                self._set_wake(self._incoming[0][0])
            else:
                self._set_wake(None)
            return
        plan = self._schedule_step(now_s)
        if not plan:
            # nothing fits (e.g. a prompt larger than the whole KV cache): fail loudly
            seq = self.waiting[0] if self.waiting else None
            raise RuntimeError(
                f"replica {self.id}: cannot schedule request "
                f"{getattr(seq.req, 'request_id', '?') if seq else '?'} "
                f"(prompt {seq.prompt_tokens if seq else '?'} tokens, KV capacity "
                f"{self.capacity_blocks * self.block_tokens} tokens)")
        self._seg_start = now_s
        all_decode = all(not s.in_prefill for s, _ in plan)
        # A decode-only batch repeats unchanged until a sequence finishes, the KV cache
        # fills, or a new request could join: only then can it be advanced in one run.
        admission_possible = (bool(self.waiting) and not self._admission_blocked
                              and len(self.running) < self.max_num_seqs)
        if all_decode and not admission_possible and len(plan) == len(self.running):
            self._start_run(now_s, plan)
            if self._incoming and not self.waiting:
                self._cut_run_for_arrival(self._incoming[0][0])
            return
        self._seg_kind = "step"
        self._seg_plan = plan
        decode = [s for s, t in plan if not s.in_prefill]
        chunks = [(t, s.computed) for s, t in plan if s.in_prefill]
        finishing = sum(1 for s, t in plan if s.in_prefill and s.computed + t >= s.prefill_target)
        dt = self.perf.iteration_s(decode_seqs=len(decode),
                                   decode_context_tokens=sum(s.computed for s in decode),
                                   prefill_chunks=chunks, prefill_finishing=finishing) * self.slowdown
        self._set_wake(now_s + dt + self.step_overhead_s + self.seq_overhead_s * len(plan))

    def _start_run(self, now_s: float, plan: list[tuple[Sequence, int]]) -> None:
        seqs = [s for s, _ in plan]
        k = min(s.remaining_output for s in seqs)
        if k > 1:
            k = self._kv_limited_run(seqs, k, now_s)
        n = len(seqs)
        ctx0 = sum(s.computed for s in seqs)
        a, b = self.perf.decode_run_coefficients(n)
        a, b = a * self.slowdown + self.step_overhead_s + self.seq_overhead_s * n, b * self.slowdown
        self._seg_kind = "run"
        self._seg_plan = plan
        self._run_k = k
        self._run_coef = (a, b)
        self._run_ctx0 = ctx0
        self._set_wake(now_s + StepTimeModel.decode_run_s(a, b, n, ctx0, k))

    def _kv_limited_run(self, seqs: list[Sequence], k: int, now_s: float) -> int:
        """Largest run length <= k whose extra KV blocks fit; allocates them. At least 1."""
        bt = self.block_tokens
        pbt = self.cfg.prefix_block_tokens

        def extra(kk: int) -> int:
            total = 0
            for s in seqs:
                shared = len(s.shared_refs) * pbt
                total += max(0, _ceil_div(s.computed + kk - shared, bt) - s.own_blocks)
            return total

        avail = self._free_blocks() + (self.prefix_cache.evictable_blocks
                                       if self.prefix_cache else 0)
        if extra(k) > avail:
            lo, hi = 1, k          # extra(lo) fits (single step already allocated)
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if extra(mid) <= avail:
                    lo = mid
                else:
                    hi = mid - 1
            k = lo
        for s in seqs:
            if not self._grow(s, k, now_s):
                raise AssertionError("KV run allocation failed after a successful fit check")
        return k

    def _truncate_run(self, now_s: float) -> None:
        a, b = self._run_coef
        n = len(self._seg_plan)
        done = StepTimeModel.decode_iterations_done(a, b, n, self._run_ctx0, now_s - self._seg_start)
        new_k = done + 1                       # the iteration in flight completes
        if new_k >= self._run_k:
            return
        # give back the blocks reserved for iterations that will not run
        self._run_k = new_k
        for s, _ in self._seg_plan:
            shared = len(s.shared_refs) * self.cfg.prefix_block_tokens
            keep = max(0, _ceil_div(s.computed + new_k - shared, self.block_tokens))
            if keep < s.own_blocks:
                self.own_blocks_used -= s.own_blocks - keep
                s.own_blocks = keep
        self._set_wake(self._seg_start
                       + StepTimeModel.decode_run_s(a, b, n, self._run_ctx0, new_k))

    def _set_wake(self, t: float | None) -> None:
        self.next_wake_s = t
        self.version += 1

    # -- applying a finished segment --------------------------------------------------------
    def _finish_segment(self, now_s: float) -> None:
        if self._seg_kind == "wait":
            return
        self.busy_s += now_s - self._seg_start
        listener = self.listener
        if self._seg_kind == "run":
            k = self._run_k
            self.iterations += k
            out_tokens = 0
            for s, _ in self._seg_plan:
                s.computed += k
                s.generated += k
                out_tokens += k
            listener.on_tokens(0, out_tokens, now_s)
            for s, _ in self._seg_plan:
                if s.generated >= s.output_tokens:
                    self._complete(s, now_s)
            return
        self.iterations += 1
        prompt_tokens = 0
        out_tokens = 0
        for s, t in self._seg_plan:
            if s.in_prefill:
                s.computed += t
                prompt_tokens += t
                if s.computed >= s.prefill_target:
                    self._publish_prefix(s, now_s)
                    if self.role == ROLE_PREFILL:
                        s.generated = 1
                        out_tokens += 1
                        if s.first_token_s is None:
                            s.first_token_s = now_s
                        self.running.remove(s)
                        self._release(s, now_s)
                        listener.on_prefill_done(s, now_s)
                        continue
                    s.generated += 1
                    out_tokens += 1
                    if s.first_token_s is None:
                        s.first_token_s = now_s
                        listener.on_first_token(s, now_s)
            else:
                s.computed += t
                s.generated += 1
                out_tokens += 1
            if s.generated >= s.output_tokens:
                self._complete(s, now_s)
        listener.on_tokens(prompt_tokens, out_tokens, now_s)

    def _complete(self, seq: Sequence, now_s: float) -> None:
        self.running.remove(seq)
        self._release(seq, now_s, finished=True)
        seq.finish_s = now_s
        self.listener.on_finish(seq, now_s)


EngineFactory = Callable[[int, str], Engine]

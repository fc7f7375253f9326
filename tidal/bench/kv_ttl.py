"""KV-cache TTL bench: which TTL a session's KV is pinned for between turns, replayed on the engine.

Each policy is a per-turn pin chooser (``EngineConfig.session_kv_ttl_fn``): called when a session's
turn finishes on the simulated engine, it returns how long to pin that turn's prefix KV against LRU
eviction (tidal/sim/prefix_cache.py). The same requests, engine and replicas run under:

* ``lru``: no pinning (vLLM/SGLang prefix caching as shipped: LRU over unreferenced blocks);
* ``fixed-10s`` / ``fixed-60s`` / ``fixed-300s``: one TTL for every turn;
* ``tidal``: tidal/policies/kv_ttl.py on a :class:`~tidal.predictors.pauses.SessionPausePredictor`
  learning online from the pauses the replay produces (the pause before a turn is learnt when
  that turn finishes), per tool where the trace names the next turn's tool (the tool call is in
  the finished turn's output, as Continuum uses it), at the price of the replica's break-even hold;
* ``oracle``: knows when each turn's next turn arrives; pins exactly until then (plus
  :data:`ORACLE_SLACK_S` for the request to reach the engine) when that gap is shorter than the
  break-even hold, else not at all.

Measured per policy: re-prefill tokens (tokens of a returning turn's prompt that its previous turn
had computed and that were not found in the cache), pinned KV token-seconds (the prefix cache's
pinned block-seconds), TTFT of returning turns (mean, p90), session time on the model (the sum of
a session's turns' end-to-end latencies: its job completion time minus its pauses, which no policy
changes in an open-loop replay) and the net benefit over LRU in tokens of prefill::

    net = (re-prefill tokens under LRU - re-prefill tokens) - price x pinned token-seconds

with ``price`` the same hold price the policy is given (1 / break-even hold).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from tidal.api.modeldeployment import ModelDeployment, ModelSpec
from tidal.core.modeldeployment import kv_ttl_auto
from tidal.core.state import CoreState
from tidal.policies.baselines.fixed import FixedReplicas
from tidal.policies.interface import POOL_UNIFIED, AcceleratorProfile, KvResidency
from tidal.policies.defaults import KV_METRICS_SAMPLE_RATE, KV_SIGNAL_MIN_GAPS, KV_TTL_GRID_POINTS, KV_TTL_MIN_S
from tidal.policies.kv_ttl import KVTTLChoice, choose_ttl, deployment_price_per_s
from tidal.policies.profile import build_profile
from tidal.predictors.kv_residency import VLLM_RESIDENCY_BUCKETS_S, learn_residency
from tidal.predictors.pauses import MAX_PAUSE_S, SessionPausePredictor
from tidal.sim.engine import EngineConfig, RequestLike
from tidal.sim.hardware import get_accelerator, get_model
from tidal.sim.prefix_cache import ResidencyHistograms
from tidal.sim.runner import SimConfig, Simulation
from tidal.sim.traces.records import KV_BLOCK_TOKENS, LLMRequest

FIXED_TTLS_S = (10.0, 60.0, 300.0)
"""The fixed TTLs the issue compares against (10 s, 1 min, 5 min)."""
ORACLE_SLACK_S = 0.5
"""The oracle pins this much past the next turn's arrival: the request path (API server, tokenizer,
scheduler queue) before the engine references the KV (tidal/sim/engine.py request path latency is
tens of milliseconds; the rest covers a short queue)."""
TIDAL_REFRESH_TURNS = 25
"""tidal recomputes a category's TTL after this many new pauses of it, and sooner while it has few
(the predictor decays over hours; a TTL per turn would cost 400 CDF evaluations for nothing)."""
NO_TOOL = "(no tool call)"
"""Category of a turn whose output calls no tool: the agent's final answer."""
TIDAL_MAX_TTL_S = 300.0
"""``spec.kvCache.maxTTL``'s default in the bench (tidal/api/modeldeployment.py)."""

Chooser = Callable[[RequestLike, float], float | None]


@dataclass(frozen=True)
class TurnGraph:
    """How turns follow each other: who continues whom, and what each parent's next turn is."""

    parent: Mapping[int, int]
    next_arrival_s: Mapping[int, float]
    next_tool: Mapping[int, str | None]
    reusable_tokens: Mapping[int, int]
    """Prompt tokens of a returning turn in full blocks shared with its parent's prompt."""


def turn_graph(requests: Sequence[LLMRequest], parents: Mapping[int, int]) -> TurnGraph:
    """The graph of ``requests`` (``request_id`` = index) under ``parents`` (child -> parent)."""
    next_arrival: dict[int, float] = {}
    next_tool: dict[int, str | None] = {}
    reusable: dict[int, int] = {}
    for child, par in sorted(parents.items()):
        c, p = requests[child], requests[par]
        if par not in next_arrival or c.arrival_s < next_arrival[par]:
            next_arrival[par], next_tool[par] = c.arrival_s, c.tool
        shared = 0
        for a, b in zip(c.hash_ids[: c.prompt_tokens // KV_BLOCK_TOKENS], p.hash_ids):
            if a != b:
                break
            shared += 1
        reusable[child] = shared * KV_BLOCK_TOKENS
    return TurnGraph(dict(parents), next_arrival, next_tool, reusable)


def session_parents(requests: Sequence[LLMRequest]) -> dict[int, int]:
    """Child -> parent for traces with linear sessions (``session_id``, ``turn``)."""
    index = {(r.session_id, r.turn): i for i, r in enumerate(requests) if r.session_id is not None}
    return {i: index[(r.session_id, r.turn - 1)] for i, r in enumerate(requests)
            if r.session_id is not None and r.turn > 0 and (r.session_id, r.turn - 1) in index}


def fixed_chooser(ttl_s: float | None) -> Chooser:
    return lambda req, now_s: ttl_s


def oracle_chooser(graph: TurnGraph, price_per_s: float, slack_s: float = ORACLE_SLACK_S) -> Chooser:
    """Pins until the next turn arrives when that gap is worth holding (``gap < 1 / price``)."""

    def choose(req: RequestLike, now_s: float) -> float | None:
        arrival = graph.next_arrival_s.get(req.request_id)
        if arrival is None:
            return None
        gap = max(0.0, arrival - now_s)
        return gap + slack_s if gap * price_per_s < 1.0 else None

    return choose


@dataclass
class TidalChooser:
    """tidal's ``ttl: auto`` as a per-turn chooser, learning pauses from the replay as it runs."""

    graph: TurnGraph
    price_per_s: float
    max_ttl_s: float = TIDAL_MAX_TTL_S
    per_category: bool = True
    predictor: SessionPausePredictor = field(default_factory=SessionPausePredictor)
    _ends: dict[int, float] = field(default_factory=dict)
    _choices: dict[str | None, tuple[int, KVTTLChoice]] = field(default_factory=dict)
    _seen: dict[str | None, int] = field(default_factory=dict)
    _waiting: dict[int, tuple[float, str | None]] = field(default_factory=dict)
    """Turns whose next turn has not come yet: request id -> (end time, category)."""

    def __call__(self, req: RequestLike, now_s: float) -> float | None:
        rid = req.request_id
        parent = self.graph.parent.get(rid)
        if parent is not None and parent in self._ends:
            category = getattr(req, "tool", None) if self.per_category else None
            self.learn(now_s, max(0.0, req.arrival_s - self._ends[parent]), category, parent)
        self._ends[rid] = now_s
        category = self.graph.next_tool.get(rid) if self.per_category else None
        self.expire(now_s)
        ttl = self.choice(category, now_s).ttl_s
        self.turn_ended(rid, now_s, category)
        return ttl or None

    def last_ttls_s(self) -> dict[str, float]:
        """The TTL last chosen per category."""
        return {str(k): v[1].ttl_s for k, v in self._choices.items()}

    def turn_ended(self, request_id: int, now_s: float, category: str | None) -> None:
        """A turn of ``category`` ended at ``now_s``: its pause is open until :meth:`learn`."""
        self._waiting[request_id] = (now_s, category)

    def learn(self, now_s: float, pause_s: float, category: str | None, request_id: int | None = None) -> None:
        """One pause of ``category`` known at ``now_s`` (``math.inf``: longer than any TTL), the one
        after turn ``request_id`` when given (no longer waiting)."""
        self.predictor.observe(now_s, min(pause_s, MAX_PAUSE_S), category)
        self._seen[category] = self._seen.get(category, 0) + 1
        if request_id is not None:
            self._waiting.pop(request_id, None)

    def expire(self, now_s: float) -> None:
        """Learn the turns that have waited ``max_ttl_s`` as pauses longer than any TTL (the
        accounting replay tells them through :meth:`learn`; the engine replay has no horizon)."""
        for rid, (end_s, category) in list(self._waiting.items()):
            if now_s - end_s >= self.max_ttl_s:
                self.learn(end_s + self.max_ttl_s, math.inf, category, rid)

    def choice(self, category: str | None, now_s: float | None = None) -> KVTTLChoice:
        """The TTL for a turn of ``category`` ending at ``now_s``; the turns still waiting then
        enter as right-censored pauses (tidal/predictors/pauses.py ``kaplan_meier``)."""
        seen = self._seen.get(category, 0)
        cached = self._choices.get(category)
        # Early on every few pauses (the choice moves most while a category is new), then every
        # TIDAL_REFRESH_TURNS.
        if cached is None or seen - cached[0] >= min(TIDAL_REFRESH_TURNS, max(1, cached[0] // 2)):
            known = category if category in self.predictor.categories() else None
            waits = [] if now_s is None else [now_s - end for end, cat in self._waiting.values()
                                              if cat == category and end <= now_s]
            choice = choose_ttl(self.predictor.cdf_function(known, waits), price_per_s=self.price_per_s,
                                max_ttl_s=self.max_ttl_s)
            cached = (seen, choice)
            self._choices[category] = cached
        return cached[1]


@dataclass(frozen=True)
class KVBenchSetup:
    """The engine the sessions run on (one fixed set of replicas: only the TTL differs)."""

    model: str = "llama-3.1-8b"
    accelerator: str = "H100-80GB"
    replicas: int = 1
    seed: int = 0


def accelerator_profile_of(setup: KVBenchSetup) -> tuple[ModelSpec, AcceleratorProfile]:
    """The setup as a ModelDeployment's ``spec.model`` and an AcceleratorClass would state it."""
    model, acc = get_model(setup.model), get_accelerator(setup.accelerator)
    profile = AcceleratorProfile(name=acc.name, hourly_cost=acc.gpu_hour_cost_usd,
                                 peak_tflops=acc.peak_bf16_flops / 1e12,
                                 memory_bandwidth_gbps=acc.memory_bandwidth_bps / 1e9,
                                 memory_bytes=float(acc.memory_bytes))
    return ModelSpec(name=model.name, parametersBillions=model.params / 1e9), profile


def price_for(setup: KVBenchSetup) -> float:
    """The hold price tidal is given: from the model's size and the accelerator's datasheet, as the
    operator derives it from the ModelDeployment and its AcceleratorClass."""
    return deployment_price_per_s(*accelerator_profile_of(setup))


def kv_capacity_for(setup: KVBenchSetup) -> float:
    """KV tokens one replica holds, by the profile tidal prices with (tidal/policies/profile.py)."""
    return build_profile(*accelerator_profile_of(setup)).kv_capacity_tokens()


def run_policy(requests: Sequence[LLMRequest], graph: TurnGraph, chooser: Chooser,
               setup: KVBenchSetup, name: str) -> dict[str, Any]:
    """One replay under ``chooser``; the metrics of the module docstring (net filled in later)."""
    cfg = SimConfig(model=setup.model, accelerator=setup.accelerator,
                    initial_replicas={POOL_UNIFIED: setup.replicas}, seed=setup.seed,
                    engine=EngineConfig(session_kv_ttl_fn=chooser))
    sim = Simulation(requests, FixedReplicas({POOL_UNIFIED: setup.replicas}, name=name), cfg)
    result = sim.run()
    pinned_block_s = 0.0
    block_tokens = cfg.engine.kv_block_tokens
    for pod in sim.cluster.pods.values():
        cache = getattr(pod.engine, "prefix_cache", None)
        if cache is not None:
            cache.close_pins(sim.now_s)
            pinned_block_s += cache.pinned_block_s
    rq = result.requests
    ids = rq["request_id"]
    returning = np.array([int(i) in graph.parent for i in ids], dtype=bool)
    reusable = np.array([graph.reusable_tokens.get(int(i), 0) for i in ids], dtype=float)
    reprefill = np.maximum(0.0, reusable - rq["cached_tokens"])[returning]
    ttft = rq["ttft_s"][returning]
    session_time: dict[int, float] = {}
    for i, e2e in zip(ids, rq["e2e_s"]):
        sid = requests[int(i)].session_id
        if sid is not None:
            session_time[sid] = session_time.get(sid, 0.0) + float(e2e)
    multi = [t for sid, t in session_time.items() if sid in _multi_turn_sessions(requests)]
    return {
        "policy": name,
        "finished": int(result.summary["finished"]),
        "returning_turns": int(returning.sum()),
        "reprefill_tokens": float(reprefill.sum()),
        "pinned_token_s": pinned_block_s * block_tokens,
        "ttft_returning_mean_s": float(ttft.mean()) if ttft.size else math.nan,
        "ttft_returning_p90_s": float(np.quantile(ttft, 0.9)) if ttft.size else math.nan,
        "session_model_time_mean_s": float(np.mean(multi)) if multi else math.nan,
        "wall_s": result.wall_s,
    }


def _multi_turn_sessions(requests: Sequence[LLMRequest]) -> set[int]:
    return {r.session_id for r in requests if r.session_id is not None and r.turn > 0}


def run_suite(requests: Sequence[LLMRequest], parents: Mapping[int, int], setup: KVBenchSetup,
              *, per_category: bool = True) -> list[dict[str, Any]]:
    """LRU, the fixed TTLs, tidal and the oracle on the same replay; ``net_benefit_tokens`` and
    ``of_oracle`` (net / oracle's net) added to each row."""
    graph = turn_graph(requests, parents)
    price = price_for(setup)
    choosers: list[tuple[str, Chooser]] = [("lru", fixed_chooser(None))]
    choosers += [(f"fixed-{t:g}s", fixed_chooser(t)) for t in FIXED_TTLS_S]
    choosers.append(("tidal", TidalChooser(graph, price, per_category=per_category)))
    choosers.append(("oracle", oracle_chooser(graph, price)))
    rows = [run_policy(requests, graph, chooser, setup, name) for name, chooser in choosers]
    base = rows[0]["reprefill_tokens"]
    for row in rows:
        row["price_per_s"] = price
        row["net_benefit_tokens"] = (base - row["reprefill_tokens"]) - price * row["pinned_token_s"]
    oracle = rows[-1]["net_benefit_tokens"]
    for row in rows:
        row["of_oracle"] = row["net_benefit_tokens"] / oracle if oracle > 0 else math.nan
    return rows


def verdict(rows: Sequence[Mapping[str, Any]], share_of_oracle: float = 0.9) -> dict[str, bool]:
    """The issue's target: tidal's net >= 90 % of the oracle's and above every fixed TTL's; and,
    when the rows have one, the same share of the best TTL per category in hindsight's net (the
    ceiling of any TTL chosen from a distribution; with a ceiling <= 0: at least that ceiling)."""
    by = {r["policy"]: r for r in rows}
    tidal = by["tidal"]["net_benefit_tokens"]
    fixed = [r["net_benefit_tokens"] for r in rows if str(r["policy"]).startswith("fixed-")]
    oracle = by["oracle"]["net_benefit_tokens"]
    out = {
        "of_oracle": oracle > 0 and tidal >= share_of_oracle * oracle,
        "beats_every_fixed": all(tidal > f for f in fixed),
    }
    if "hindsight" in by:
        ceiling = by["hindsight"]["net_benefit_tokens"]
        out["of_hindsight"] = tidal >= (share_of_oracle * ceiling if ceiling > 0 else ceiling)
    return out


# --- the accounting replay: the TTL decision alone, with KV memory contended -------------------------


@dataclass(frozen=True)
class TurnEnd:
    """One finished turn as the accounting replay sees it (times from the engine's LRU replay)."""

    request_id: int
    end_s: float
    held_tokens: int
    """Prompt tokens in full blocks: the KV a pin keeps."""
    pause_s: float
    """Until the next turn arrives (inf: no next turn; the pin is wasted)."""
    next_id: int | None
    next_tool: str | None
    tool: str | None
    """The tool of the pause that led to this turn (what tidal learns it under)."""
    pause_before_s: float | None
    """The pause before this turn (None for a session's first turn)."""
    overlapped: bool = False
    """The next turn arrived before this one finished (an open-loop replay served it slower than
    the traced system did): a hit under every policy, and no pause to learn."""


def turn_ends(requests: Sequence[LLMRequest], graph: TurnGraph,
              finish_s: Mapping[int, float], *, closed_loop: bool = False) -> list[TurnEnd]:
    """Every finished turn with the pause until its next turn, sorted by end time.

    ``closed_loop``: the next turn comes its recorded ``pause_s`` after this turn ends (an agent
    waits for the answer, then for its tool); else at its recorded arrival (the gap after the
    replayed finish: a trace that only has arrival times)."""
    first_child: dict[int, int] = {}
    for child, par in graph.parent.items():
        if par not in first_child or requests[child].arrival_s < requests[first_child[par]].arrival_s:
            first_child[par] = child
    ends = []
    for rid, end in finish_s.items():
        r = requests[rid]
        child = first_child.get(rid)
        pause, overlapped = math.inf, False
        if child is not None:
            gap = requests[child].arrival_s - end
            overlapped = not closed_loop and gap <= 0
            pause = requests[child].pause_s if closed_loop else max(0.0, gap)
        par = graph.parent.get(rid)
        before = max(0.0, r.arrival_s - finish_s[par]) if par is not None and par in finish_s else None
        held = (min(r.prompt_tokens // KV_BLOCK_TOKENS, len(r.hash_ids))) * KV_BLOCK_TOKENS
        ends.append(TurnEnd(rid, end, held, pause, child, graph.next_tool.get(rid), r.tool, before,
                            overlapped))
    ends.sort(key=lambda e: e.end_s)
    return ends


def account_policy(ends: Sequence[TurnEnd], graph: TurnGraph, ttl_of: Callable[[TurnEnd], float],
                   learn: Callable[[float, TurnEnd, float], None] | None = None,
                   horizon_s: float = TIDAL_MAX_TTL_S) -> dict[str, Any]:
    """Re-prefill tokens and pinned token-seconds when each turn is pinned for ``ttl_of(turn)``.

    Unpinned KV is assumed gone when the next turn comes (the memory is contended: the same
    assumption as a memory pressure of 1 in the price). ``learn(now_s, turn, pause_s)`` is told
    each turn's outcome when it is known: the pause when the next turn arrives within
    ``horizon_s``, else, at ``horizon_s`` after the turn ended, that the pause is longer
    (``math.inf``: a session that ended, or came back too late for any pin)."""
    reprefill = pinned = 0.0
    hits = returning = 0
    missed: dict[int, bool] = {}
    pending: list[tuple[float, int, float]] = []  # (known at, index in ends, pause or inf)
    if learn is not None:
        for i, e in enumerate(ends):
            if e.overlapped:
                continue
            known = e.end_s + min(e.pause_s, horizon_s)
            pending.append((known, i, e.pause_s if e.pause_s <= horizon_s else math.inf))
        pending.sort()
    cursor = 0
    for e in ends:
        while learn is not None and cursor < len(pending) and pending[cursor][0] <= e.end_s:
            known, i, pause = pending[cursor]
            learn(known, ends[i], pause)
            cursor += 1
        ttl = max(0.0, ttl_of(e))
        if not e.overlapped:
            pinned += e.held_tokens * min(e.pause_s, ttl)
        if e.next_id is not None:
            returning += 1
            hit = e.pause_s <= ttl
            hits += hit
            missed[e.next_id] = not hit
            if not hit:
                reprefill += graph.reusable_tokens.get(e.next_id, 0)
    return {"reprefill_tokens": reprefill, "pinned_token_s": pinned,
            "hit_ratio": hits / returning if returning else math.nan, "_missed": missed}


def hindsight_ttls(ends: Sequence[TurnEnd], graph: TurnGraph, price_per_s: float,
                   category_of: Callable[[TurnEnd], str | None],
                   max_ttl_s: float = TIDAL_MAX_TTL_S) -> dict[str | None, float]:
    """The best TTL per category in hindsight: the one TTL (0 or on the policy's log grid up to
    ``max_ttl_s``) that maximises the category's net benefit over LRU on these very turns.

    The ceiling of any policy that gives every turn of a category the same TTL, however well it
    learns the pause distribution; only the oracle, which knows each pause, does better."""
    grid = np.concatenate([[0.0], np.geomspace(KV_TTL_MIN_S, max_ttl_s, KV_TTL_GRID_POINTS // 4)])
    net: dict[str | None, np.ndarray] = {}
    for e in ends:
        gain = np.zeros_like(grid)
        if e.next_id is not None:
            # saved over LRU when the pause fits in T (LRU itself hits only overlapped turns)
            hit = e.pause_s <= grid
            gain += np.where(hit & (e.pause_s > 0.0), graph.reusable_tokens.get(e.next_id, 0), 0.0)
        if not e.overlapped:
            gain -= price_per_s * e.held_tokens * np.minimum(e.pause_s, grid)
        key = category_of(e)
        net[key] = net.get(key, 0.0) + gain
    return {key: float(grid[int(np.argmax(values))]) for key, values in net.items()}


def account_suite(requests: Sequence[LLMRequest], parents: Mapping[int, int], setup: KVBenchSetup,
                  *, per_category: bool = True, closed_loop: bool = False) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """LRU, the fixed TTLs, the best TTL per category in hindsight (:func:`hindsight_ttls`), tidal
    (learning online) and the oracle on the turn ends of one engine
    replay under LRU: the TTL decision alone, measured in the units it trades (tokens of prefill
    and token-seconds of KV), with TTFT and job completion time of returning turns modelled from the
    replay's latencies plus the re-prefill's time on the replica's profile."""
    graph = turn_graph(requests, parents)
    price = price_for(setup)
    base = run_policy_raw(requests, setup)
    finish = dict(zip((int(i) for i in base["request_id"]), (float(f) for f in base["finish_s"])))
    ttft = dict(zip((int(i) for i in base["request_id"]), (float(t) for t in base["ttft_s"])))
    e2e = dict(zip((int(i) for i in base["request_id"]), (float(t) for t in base["e2e_s"])))
    ends = turn_ends(requests, graph, finish, closed_loop=closed_loop)
    prefill_token_s = 1.0 / price / kv_capacity_for(setup)  # the profile's t_p (break-even / K)

    tidal = TidalChooser(graph, price, per_category=per_category)

    def category_of(e: TurnEnd) -> str | None:
        # A turn whose output calls no tool ends its session: its own category.
        return (e.next_tool or NO_TOOL) if per_category else None

    def tidal_learn(now_s: float, e: TurnEnd, pause_s: float) -> None:
        tidal.learn(now_s, pause_s, category_of(e), e.request_id)

    def tidal_ttl(e: TurnEnd) -> float:
        ttl = tidal.choice(category_of(e), e.end_s).ttl_s
        if not e.overlapped:  # an overlapped turn's pause is never learnt (account_policy)
            tidal.turn_ended(e.request_id, e.end_s, category_of(e))
        return ttl

    def oracle_ttl(e: TurnEnd) -> float:
        return e.pause_s if e.next_id is not None and e.pause_s * price < 1.0 else 0.0

    policies: list[tuple[str, Callable[[TurnEnd], float], Callable[[TurnEnd], None] | None]] = [
        ("lru", lambda e: 0.0, None)]
    policies += [(f"fixed-{t:g}s", (lambda t: lambda e: t)(t), None) for t in FIXED_TTLS_S]
    best = hindsight_ttls(ends, graph, price, category_of)
    policies += [("hindsight", lambda e: best.get(category_of(e), 0.0), None),
                 ("tidal", tidal_ttl, tidal_learn), ("oracle", oracle_ttl, None)]
    rows = []
    sessions = _multi_turn_sessions(requests)
    for name, ttl_of, learn in policies:
        acc = account_policy(ends, graph, ttl_of, learn)
        missed: dict[int, bool] = acc.pop("_missed")  # type: ignore[assignment]
        # A returning turn that misses pays its reusable context's prefill on top of the replay's TTFT
        # (which under LRU already found it when memory allowed): modelled, not re-simulated.
        extra = {rid: (graph.reusable_tokens.get(rid, 0) * prefill_token_s if miss else 0.0)
                 for rid, miss in missed.items()}
        ttfts = np.array([ttft[rid] + extra[rid] for rid in missed])
        session_time: dict[int, float] = {}
        for rid, t in e2e.items():
            sid = requests[rid].session_id
            if sid in sessions:
                session_time[sid] = session_time.get(sid, 0.0) + t + extra.get(rid, 0.0) + (
                    requests[rid].pause_s if requests[rid].turn > 0 else 0.0)
        rows.append({"policy": name, **acc,
                     "ttft_returning_mean_s": float(ttfts.mean()) if ttfts.size else math.nan,
                     "ttft_returning_p90_s": float(np.quantile(ttfts, 0.9)) if ttfts.size else math.nan,
                     "jct_mean_s": float(np.mean(list(session_time.values()))) if session_time else math.nan})
    lru = rows[0]["reprefill_tokens"]
    oracle = None
    for row in rows:
        row["price_per_s"] = price
        row["net_benefit_tokens"] = (lru - row["reprefill_tokens"]) - price * row["pinned_token_s"]
    oracle = rows[-1]["net_benefit_tokens"]
    for row in rows:
        row["of_oracle"] = row["net_benefit_tokens"] / oracle if oracle > 0 else math.nan
    info = {"turn_ends": len(ends), "returning_turns": sum(e.next_id is not None for e in ends),
            "break_even_hold_s": 1.0 / price,
            "tidal_ttls_s": tidal.last_ttls_s(),
            "hindsight_ttls_s": {str(k): v for k, v in best.items()}}
    return rows, info


def run_policy_raw(requests: Sequence[LLMRequest], setup: KVBenchSetup) -> dict[str, np.ndarray]:
    """The per-request outcome of one engine replay under LRU (no pins)."""
    cfg = SimConfig(model=setup.model, accelerator=setup.accelerator,
                    initial_replicas={POOL_UNIFIED: setup.replicas}, seed=setup.seed)
    return Simulation(requests, FixedReplicas({POOL_UNIFIED: setup.replicas}, name="lru"), cfg).run().requests


# --- the engine signal: what ``ttl: auto`` learns in the operator (vLLM's KV-block residency) --------


def residency_of_replay(requests: Sequence[LLMRequest], setup: KVBenchSetup,
                        sample_rate: float = KV_METRICS_SAMPLE_RATE) -> tuple[KvResidency, float]:
    """The KV-block residency histograms an LRU engine replay reports over its whole run (vLLM
    ``--kv-cache-metrics`` at ``sample_rate``; tidal/sim/prefix_cache.py), summed over replicas, as
    cumulative bucket counts; and the run's length in seconds. Blocks never evicted report nothing,
    as in vLLM."""
    cfg = SimConfig(model=setup.model, accelerator=setup.accelerator,
                    initial_replicas={POOL_UNIFIED: setup.replicas}, seed=setup.seed,
                    engine=EngineConfig(kv_metrics_sample=sample_rate, kv_metrics_seed=setup.seed))
    sim = Simulation(requests, FixedReplicas({POOL_UNIFIED: setup.replicas}, name="lru"), cfg)
    sim.run()
    total = ResidencyHistograms()
    for pod in sim.cluster.pods.values():
        sim._collect_residency(pod)  # what the last tick did not collect yet
    for reported in sim.residency_reported.values():
        total.add(reported)
    bounds = (*VLLM_RESIDENCY_BUCKETS_S, math.inf)

    def cumulative(counts: np.ndarray) -> tuple[tuple[float, float], ...]:
        return tuple(zip(bounds, (float(c) for c in np.cumsum(counts))))

    duration = max(sim.now_s, 1.0)
    return KvResidency(cumulative(total.reuse_gap), cumulative(total.idle_before_evict), duration), duration


def signal_ttl(residency: KvResidency, price_per_s: float, max_ttl_s: float = TIDAL_MAX_TTL_S,
               min_gaps: float = KV_SIGNAL_MIN_GAPS) -> dict[str, Any]:
    """The TTL ``ttl: auto`` publishes after learning ``residency`` (the core's path: reuse gaps as
    ended pauses at bucket upper edges, idle-before-evict as right-censored at lower edges,
    tidal/predictors/kv_residency.py), with and without the trust threshold of ``min_gaps``."""
    predictor = SessionPausePredictor()
    ended, censored = learn_residency(predictor, residency.window_s, residency)
    learnt = choose_ttl(predictor.cdf_function(), price_per_s=price_per_s, max_ttl_s=max_ttl_s).ttl_s
    prior = choose_ttl(SessionPausePredictor().cdf_function(), price_per_s=price_per_s, max_ttl_s=max_ttl_s).ttl_s
    return {"reuse_gaps": ended, "censored": censored, "learnt_ttl_s": learnt,
            "ttl_s": learnt if ended >= min_gaps else prior, "prior_ttl_s": prior}


def signal_suite(requests: Sequence[LLMRequest], parents: Mapping[int, int], setup: KVBenchSetup,
                 *, closed_loop: bool = False) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The accounting replay (:func:`account_suite`, one TTL for every turn: no categories, as the
    engine signal has none) with the TTL learnt from the engine replay's residency histograms as one
    more row, ``signal``: the TTL the operator would publish after the whole run. Compared with the
    prior's (``lru``: TTL 0, net 0), tidal learning the pauses themselves (``tidal``) and the best
    single TTL in hindsight."""
    rows, info = account_suite(requests, parents, setup, per_category=False, closed_loop=closed_loop)
    residency, _ = residency_of_replay(requests, setup)
    learnt = signal_ttl(residency, price_for(setup))
    graph = turn_graph(requests, parents)
    base = run_policy_raw(requests, setup)
    finish = dict(zip((int(i) for i in base["request_id"]), (float(f) for f in base["finish_s"])))
    ends = turn_ends(requests, graph, finish, closed_loop=closed_loop)
    price = price_for(setup)
    lru = next(r for r in rows if r["policy"] == "lru")["reprefill_tokens"]
    oracle = next(r for r in rows if r["policy"] == "oracle")["net_benefit_tokens"]
    timeline = signal_ttl_timeline(requests, setup)
    fixed_ttl = lambda t: (lambda e: t)  # noqa: E731
    for name, ttl_of, ttl in (("signal-end-unguarded", fixed_ttl(learnt["learnt_ttl_s"]), learnt["learnt_ttl_s"]),
                              ("signal-end", fixed_ttl(learnt["ttl_s"]), learnt["ttl_s"]),
                              ("signal-online", timeline_chooser(timeline), timeline[-1][1] if timeline else 0.0)):
        acc = account_policy(ends, graph, ttl_of)
        acc.pop("_missed")
        net = (lru - acc["reprefill_tokens"]) - price * acc["pinned_token_s"]
        rows.append({"policy": name, **acc, "ttl_s": ttl, "price_per_s": price, "net_benefit_tokens": net,
                     "of_oracle": net / oracle if oracle > 0 else math.nan})
    ttls = [t for _, t in timeline]
    info["signal_online"] = {"ticks": len(ttls), "ticks_pinning": sum(t > 0 for t in ttls),
                             "max_ttl_s": max(ttls, default=0.0), "last_ttl_s": ttls[-1] if ttls else 0.0}
    info["signal"] = learnt
    info["residency"] = {"reuse_gap": residency.reuse_gap, "idle_before_evict": residency.idle_before_evict}
    return rows, info


def signal_ttl_timeline(requests: Sequence[LLMRequest], setup: KVBenchSetup,
                        max_ttl_s: float = TIDAL_MAX_TTL_S) -> list[tuple[float, float]]:
    """(time, TTL) at every tick of an LRU engine replay whose engines report KV-block residency:
    the TTL ``ttl: auto`` publishes, from the decision core's own function (tidal/core
    ``kv_ttl_auto``: the same learning, trust threshold and pricing as the operator's tick) fed each
    tick's window of increments, as the simulator's shell builds them."""
    model, profile = accelerator_profile_of(setup)
    md = ModelDeployment.model_validate({"metadata": {"name": "bench", "namespace": "bench"}, "spec": {
        "model": model.model_dump(by_alias=True, exclude_none=True), "engine": {"image": "vllm"},
        "slo": {"ttft": "1s"}, "pools": {"unified": {"minReplicas": setup.replicas, "maxReplicas": setup.replicas}},
        "placement": {"acceleratorClasses": ["bench"]},
        "kvCache": {"ttl": "auto", "maxTTL": f"{max_ttl_s:g}s"}}})
    timeline: list[tuple[float, float]] = []
    state = CoreState()
    fixed = FixedReplicas({POOL_UNIFIED: setup.replicas}, name="lru")
    cfg = SimConfig(model=setup.model, accelerator=setup.accelerator,
                    initial_replicas={POOL_UNIFIED: setup.replicas}, seed=setup.seed,
                    engine=EngineConfig(kv_metrics_sample=KV_METRICS_SAMPLE_RATE, kv_metrics_seed=setup.seed))

    class _Recording:
        name = "lru"

        def decide(self, observation: Any, policy_state: Any) -> Any:
            ttl, _ = kv_ttl_auto(md, replace(observation, interval_s=cfg.tick_s), state, profile)
            timeline.append((observation.now_s, float(ttl or 0.0)))
            return fixed.decide(observation, policy_state)

    Simulation(requests, _Recording(), cfg).run()  # type: ignore[arg-type]
    return timeline


def timeline_chooser(timeline: Sequence[tuple[float, float]]) -> Callable[[TurnEnd], float]:
    """The TTL in force when a turn ends: the last tick's at or before its end (0 before the first)."""
    times = [t for t, _ in timeline]

    def ttl_of(e: TurnEnd) -> float:
        i = bisect.bisect_right(times, e.end_s) - 1
        return timeline[i][1] if i >= 0 else 0.0

    return ttl_of

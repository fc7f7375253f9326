"""The small torch network behind the neural forecaster, and its shipped prior.

An MLP maps the features of :mod:`tidal.predictors.features` to a fixed grid of
quantiles of ``value / scale``. Monotonicity is built in: the lowest quantile
is free and each next one adds a softplus increment, so quantiles never cross.
The last layer (the *head*) is what each workload fine-tunes online; the body
is the global prior, shared and frozen, so 1,000 workloads are one forward pass.

This module is for training (scripts/train_forecast_prior.py) and tests; the
serving path evaluates the same network in numpy (prior.py) without torch.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from tidal.predictors.features import N_FEATURES
from tidal.predictors.prior import GRID_QUANTILES, HIDDEN_UNITS, PRIOR_PATH  # noqa: F401 (re-exported)


class QuantileBody(nn.Module):
    """Shared feature extractor (frozen at serving time)."""

    def __init__(self, n_in: int = N_FEATURES, hidden: int = HIDDEN_UNITS) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_in, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def monotone(raw: torch.Tensor) -> torch.Tensor:
    """First column free, the rest cumulative softplus increments: non-crossing."""
    return torch.cat([raw[..., :1], raw[..., :1] + torch.cumsum(nn.functional.softplus(raw[..., 1:]), -1)], -1)


class QuantileNet(nn.Module):
    """Body + linear head; the unit the prior is trained and saved as."""

    def __init__(self, n_in: int = N_FEATURES, hidden: int = HIDDEN_UNITS) -> None:
        super().__init__()
        self.body = QuantileBody(n_in, hidden)
        self.head = nn.Linear(hidden, len(GRID_QUANTILES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return monotone(self.head(self.body(x)))


def pinball(pred: torch.Tensor, y: torch.Tensor, qs: torch.Tensor) -> torch.Tensor:
    """Mean pinball loss of [N, Q] predictions against [N] targets."""
    d = y[:, None] - pred
    return torch.maximum(qs * d, (qs - 1) * d).mean()


_PRIOR_CACHE: dict[str, QuantileNet] = {}


def load_prior(path: Path | None = None) -> QuantileNet:
    """The shipped global prior (cached per path; callers must not modify it)."""
    p = Path(path) if path is not None else PRIOR_PATH
    key = str(p)
    if key not in _PRIOR_CACHE:
        if not p.exists():
            raise FileNotFoundError(
                f"forecast prior {p} is missing; run scripts/train_forecast_prior.py to rebuild it"
            )
        blob = torch.load(p, map_location="cpu", weights_only=True)
        net = QuantileNet(int(blob["n_features"]), int(blob["hidden"]))
        if tuple(float(q) for q in blob["grid_quantiles"]) != GRID_QUANTILES:
            raise ValueError(f"forecast prior {p}: quantile grid differs from this build; retrain it")
        net.load_state_dict(blob["state_dict"])
        net.eval()
        for prm in net.parameters():
            prm.requires_grad_(False)
        _PRIOR_CACHE[key] = net
    return _PRIOR_CACHE[key]


def save_prior(net: QuantileNet, path: Path, meta: dict) -> None:
    """Write the float32 state dict plus the config needed to load it."""
    blob = {
        "state_dict": {k: v.detach().clone() for k, v in net.state_dict().items()},
        "n_features": N_FEATURES,
        "hidden": net.head.in_features,
        "grid_quantiles": list(GRID_QUANTILES),
        "meta": meta,
    }
    torch.save(blob, path)

"""Label keys tidal puts on the objects it owns; the Prometheus adapter and the chart rely on them."""

DEPLOYMENT_LABEL = "tidal.dev/deployment"
POOL_LABEL = "tidal.dev/pool"
ACCELERATOR_LABEL = "tidal.dev/accelerator"
COMPONENT_LABEL = "tidal.dev/component"
"""Marks a ModelDeployment's children that are not engine pools: its router and its entry Service."""
ROUTER_LABEL = "tidal.dev/router"
"""Selects a ModelDeployment's P/D router pods. Not tidal.dev/deployment: that label selects the
engine replicas (the ModelDeployment's /scale selector, the pod index, the metrics)."""
FUNCTION_LABEL = "tidal.dev/function"
MANAGED_BY = {"app.kubernetes.io/managed-by": "tidal"}
FIELD_MANAGER = "tidal"
"""Field manager for server-side apply: tidal owns exactly the fields it renders."""

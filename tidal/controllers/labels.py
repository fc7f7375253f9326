"""Label keys tidal puts on the objects it owns; the Prometheus adapter and the chart rely on them."""

DEPLOYMENT_LABEL = "tidal.dev/deployment"
POOL_LABEL = "tidal.dev/pool"
ACCELERATOR_LABEL = "tidal.dev/accelerator"
COMPONENT_LABEL = "tidal.dev/component"
"""Marks a ModelDeployment's children that are not engine pools: its router and its entry Service."""
FUNCTION_LABEL = "tidal.dev/function"
MANAGED_BY = {"app.kubernetes.io/managed-by": "tidal"}
FIELD_MANAGER = "tidal"
"""Field manager for server-side apply: tidal owns exactly the fields it renders."""

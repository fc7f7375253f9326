"""The rivals' autoscalers (Kubernetes HPA, KEDA, Knative KPA, AIBrix KPA/APA) and fixed baselines.

Each is a pure :class:`~tidal.policies.interface.Autoscaler`; ``catalog.BASELINE_FACTORIES``
names them and ``defaults`` holds every rival default with its source (docs/baselines.md).
"""

"""tidal: SLO-driven autoscaling of LLM serving and serverless workloads on Kubernetes."""

__version__ = "0.1.0"

"""The activator: a small async HTTP proxy in front of workloads at zero instances.

While a ServerlessFunction has no ready instance, the operator points its Service at the
activator (``tidal/operator/activator_routing.py``). The activator holds each request in a bounded
FIFO queue per workload, tells the operator at the first request (an annotation on the function,
``demand.py``), and forwards the held requests in arrival order once the function has a ready
endpoint (``server.py``). Decisions (admission, expiry, routing by Host) are pure functions in
``queueing.py``; every default is in ``settings.py`` with its source. See docs/activator.md.
"""

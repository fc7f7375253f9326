"""The activator: a small async HTTP proxy in front of ServerlessFunctions at zero instances.

A shell of its own, like ``tidal/operator``: while a function has no ready instance, the operator
adds the activator to its Service (``tidal/controllers/activator_routing.py``). The activator
holds each request in a bounded FIFO queue per workload, tells the operator at the first request
(an annotation on the function, ``demand.py``), and forwards the held requests in arrival order
once the function has a ready endpoint (``server.py``). Decisions (admission, order, expiry,
routing by Host, retry pauses) are pure functions in ``queueing.py``; I/O lives in ``server.py``
and ``kube.py`` only; every default is in ``settings.py`` with its source. See docs/activator.md.
"""

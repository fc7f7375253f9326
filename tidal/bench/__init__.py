"""``tidal bench``: every autoscaling policy on the same real traces, next to a static-peak
baseline and a clairvoyant oracle, in one table per (trace, serving mode).

Modules: ``settings`` (every default, with its source), ``workloads`` (traces, their SLOs,
model setups), ``probe`` (replay a window on a fixed deployment: the search primitive),
``static_peak`` and ``oracle`` (the two searched references), ``profiling`` (the pre-deployment
profile the Dynamo- and HeteroScale-style rivals get, swept from the setup's engine), ``policies``
(name -> factory), ``run`` (the matrix on a process pool), ``report`` (markdown, CSV, HTML),
``command`` (CLI). ``fairshare`` is the separate fair-share bench (``bench/fairshare.py``).
"""

"""The decision core's entry points: one pure call per workload kind, shared by both shells.

``tidal/policies`` holds single rules (utilisation target, placement, keep-alive...) that baselines
reuse and that know nothing of custom resources; ``tidal/predictors`` holds the learners. The entry
points here read a custom resource's spec and compose both, so they sit one layer above them. The
operator (tidal/operator) and the simulator (tidal/sim) only build an observation, call the entry
point, keep the state it returns, and apply the decision (DESIGN.md, "What you simulate is what
you run").
"""

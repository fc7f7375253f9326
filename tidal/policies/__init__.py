"""Pure decision functions: observation (+ state) in, decision with reasons out. No I/O."""

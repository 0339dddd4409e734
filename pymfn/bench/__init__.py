"""`python -m pymfn.bench`: latency, throughput, LFW accuracy and msame comparison from one CLI.

The timing loop itself is C++ (`pymfn._core.run_benchmark`, GIL released); this package chooses the
model, engine and input, then reports like trtexec: a human table with metric explanations, warnings
about noisy runs, and JSON with every raw sample.
"""

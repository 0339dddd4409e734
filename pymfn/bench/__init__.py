"""`python -m pymfn.bench`: latency, throughput, LFW accuracy and msame comparison from one CLI.

The timing loop itself is C++ (`pymfn._core.run_benchmark`, GIL released); this package chooses the
model, engine and input, then reports like trtexec: a human table with metric explanations, warnings
about noisy runs, and JSON with every raw sample.
"""



# ---------------------------------------------------------------- accuracy, sweep, msame comparison, regress
# The typed API of these four commands (``pymfn bench accuracy|sweep|msame|regress`` are thin layers over it).
# Three functions share their module's name (pymfn.bench.accuracy, .sweep, .msame_compare) and regress its
# subpackage's: importing them here, after the modules are loaded, makes ``pymfn.bench.accuracy`` etc. the
# functions (the modules stay reachable by their full import paths: ``from pymfn.bench.sweep import ...``).
from pymfn.bench.accuracy import AccuracyResult, accuracy  # noqa: E402
from pymfn.bench.msame_compare import MsameComparison, msame_compare  # noqa: E402
from pymfn.bench.regress.compare import RegressResult, RegressSettings, Verdict, regress  # noqa: E402
from pymfn.bench.sweep import SweepResult, SweepSettings, sweep  # noqa: E402

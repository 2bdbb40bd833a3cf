"""Self-contained HTML reports of walk-forward backtests (one run, several side by side, or a sweep).

    from engine.report import write_report, write_comparison
    write_report(result, "out/report.html")          # same as result.report("out/report.html")
    write_comparison([result_a, result_b], "out/compare.html")

Each file holds every figure (inline SVG), style and script: it opens offline and can be mailed or stored.
"""

from engine.report.compare import write_comparison
from engine.report.single import write_report
from engine.report.sweep import write_sweep_report

__all__ = ["write_comparison", "write_report", "write_sweep_report"]

"""The benchmark harness: strategies x skewed splits x seeds, aggregation with confidence
intervals, and a report people read in a browser.

The strategies, the aggregation and the report work on plain data (recipes as dicts, run
folders' JSON), so they need no torch:

>>> from augbal.bench import RunRecord, aggregate, resolve_strategy
>>> resolve_strategy("wce:inverse").overrides({})
{'loss': {'name': 'wce', 'weighting': 'balanced'}}
"""

from ._aggregate import (
    METRICS,
    Cell,
    Comparison,
    RunRecord,
    aggregate,
    bootstrap_interval,
    compare,
    recommend,
    shot_accuracy,
)
from ._grid import BenchResult, BenchSpec, GridRun, expand_grid, grid_table, load_bench, run_grid, strategies_help
from ._report import Report, write_report
from ._strategies import STRATEGIES, Strategy, apply_strategy, register_strategy, resolve_strategy

__all__ = [
    "METRICS",
    "BenchResult",
    "BenchSpec",
    "GridRun",
    "STRATEGIES",
    "Cell",
    "Comparison",
    "Report",
    "RunRecord",
    "Strategy",
    "aggregate",
    "apply_strategy",
    "bootstrap_interval",
    "compare",
    "expand_grid",
    "grid_table",
    "load_bench",
    "recommend",
    "register_strategy",
    "resolve_strategy",
    "run_grid",
    "shot_accuracy",
    "strategies_help",
    "write_report",
]

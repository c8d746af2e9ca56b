"""The benchmark harness: strategies x skewed splits x seeds, aggregation with confidence
intervals, and a report people read in a browser.

The aggregation and the report read run folders' JSON, so they need no torch:

>>> from augbal.bench import RunRecord, aggregate
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

__all__ = [
    "METRICS",
    "Cell",
    "Comparison",
    "RunRecord",
    "aggregate",
    "bootstrap_interval",
    "compare",
    "recommend",
    "shot_accuracy",
]

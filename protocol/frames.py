"""The tables of a ``report`` reply as pandas DataFrames, for notebooks and dashboards.

pandas is optional (``pip install 'alphad[pandas]'``) and imported only when asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from alphad.protocol.messages import Report

if TYPE_CHECKING:
    import pandas


def report_frames(report: Report) -> dict[str, pandas.DataFrame]:
    """The tables of a ``report`` reply as pandas DataFrames (needs ``alphad[pandas]``)."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError(
            "report_frames needs pandas; install the extra: pip install 'alphad[pandas]'"
        ) from None
    status = report.status
    allocation = report.allocation
    columns = ("base", "adaptive", "effective", "normalized")
    return {
        "status": pd.DataFrame(
            [
                {
                    "version": status.version,
                    "uptime_s": status.uptime_s,
                    "trades": status.trades,
                    "strategies": status.strategies,
                    "cycle": status.cycle,
                    "protocol": status.protocol,
                    **{f"component.{k}": v for k, v in status.components.items()},
                }
            ]
        ),
        **{
            f"strategies_{window}": pd.DataFrame(
                [{"strategy": s["strategy"], **(s.get(window) or {})} for s in report.strategies]
            )
            for window in ("all", "recent")
        },
        "allocation": pd.DataFrame(
            [
                {"strategy": name, **{c: allocation.get(c, {}).get(name) for c in columns}}
                for name in sorted(allocation.get("base", {}))
            ],
            columns=["strategy", *columns],
        ),
        "health": pd.DataFrame([msgspec.to_builtins(h) for h in report.health]),
        "regime_effectiveness": pd.DataFrame(report.regime_effectiveness),
        "signal_quality": pd.DataFrame(report.signal_quality.get("buckets", [])),
        "top_strategies": pd.DataFrame(report.top_strategies),
    }

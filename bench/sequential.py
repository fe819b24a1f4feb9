"""``python -m bench.sequential``: the edge test's detection delay against its false alarms.

For each loss worth detecting δ (``[lifecycle] edge_loss``) and stated false-alarm rate A
(``edge_false_alarm_trades``), on simulated pnls standardised to unit scale:

- false alarms per 10 000 trades of a strategy without edge (mean 0), on normal pnls and
  on Student-t pnls with 3 degrees of freedom (fat tails, standardised by the scale the
  lifecycle measures, ``edge_scale``), and on a strategy with a real edge (+0.1 σ a trade);
- the mean number of trades from a decay (the mean turning to −δ, or to −δ/2) to the
  alarm, against Siegmund's approximation of the CUSUM's run length.

Seeded, about 2 minutes on one core. The figures are in docs/optimization.md.
"""

from __future__ import annotations

import math
import random
import sys

from alphad.actors.sequential import cusum, edge_scale, first_alarm, threshold

TRADES = 10_000
RUNS = 40
DECAY_RUNS = 200
ONSET = 200


def siegmund_run_length(mean_z: float, shift: float, false_alarm_trades: float) -> float:
    """Siegmund's approximation of the CUSUM's mean run length for normal z of mean
    ``mean_z`` and unit variance: increments N(−δ·μ − δ²/2, δ²)."""
    drift = -shift * mean_z - shift * shift / 2.0
    spread = shift * shift
    b = threshold(false_alarm_trades) + 1.166 * shift
    if abs(drift) < 1e-12:
        return b * b / spread
    a = 2.0 * drift / spread
    return (math.exp(-a * b) + a * b - 1.0) / (2.0 * drift * drift / spread)


def student_t(rng: random.Random, dof: int) -> float:
    chi = sum(rng.gauss(0.0, 1.0) ** 2 for _ in range(dof))
    return rng.gauss(0.0, 1.0) / math.sqrt(chi / dof)


def alarms_per_run(
    draws: list[float], shift: float, false_alarm_trades: float, scale: float
) -> int:
    level = threshold(false_alarm_trades)
    statistic, alarms = 0.0, 0
    for pnl in draws:
        statistic = cusum(statistic, (pnl,), scale, shift)
        if statistic >= level:
            alarms += 1
            statistic = 0.0
    return alarms


def main() -> int:
    rng = random.Random(20261202)
    # The scale of t(3) pnls, as the lifecycle measures it on its windows.
    t_sample = [student_t(rng, 3) for _ in range(100_000)]
    t_scale = edge_scale(t_sample)
    print(
        "| δ | A | false alarms / 10 000 trades: no edge, normal | no edge, t(3) | "
        "edge +0.1 σ | trades from decay to −δ to alarm (Siegmund) | to −δ/2 (Siegmund) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for shift in (0.2, 0.3, 0.5):
        for false_alarm_trades in (100.0, 1000.0, 10_000.0):
            normal = sum(
                alarms_per_run(
                    [rng.gauss(0, 1) for _ in range(TRADES)], shift, false_alarm_trades, 1.0
                )
                for _ in range(RUNS)
            )
            fat = sum(
                alarms_per_run(
                    [student_t(rng, 3) for _ in range(TRADES)], shift, false_alarm_trades, t_scale
                )
                for _ in range(RUNS)
            )
            edge = sum(
                alarms_per_run(
                    [rng.gauss(0.1, 1) for _ in range(TRADES)], shift, false_alarm_trades, 1.0
                )
                for _ in range(RUNS)
            )
            delays = []
            for loss in (shift, shift / 2.0):
                found = []
                for _ in range(DECAY_RUNS):
                    pnls = [rng.gauss(0, 1) for _ in range(ONSET)]
                    pnls += [rng.gauss(-loss, 1) for _ in range(20_000)]
                    # A false alarm before the onset restarts the test, as in the lifecycle.
                    start = 0
                    while True:
                        at = first_alarm(pnls[start:], 1.0, shift, false_alarm_trades)
                        if at is None or start + at > ONSET:
                            break
                        start += at
                    found.append((start + at - ONSET) if at is not None else 20_000)
                delays.append(
                    f"{sum(found) / len(found):,.0f} "
                    f"({siegmund_run_length(-loss, shift, false_alarm_trades):,.0f})"
                )
            print(
                f"| {shift:g} | {false_alarm_trades:,.0f} | {normal / RUNS:.2f} | "
                f"{fat / RUNS:.2f} | {edge / RUNS:.2f} | {delays[0]} | {delays[1]} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The report's text tables read as a trader expects: numbers under their headers, times in UTC."""

from __future__ import annotations

from alphad.daemon.report import _format_table, age, utc_time


def test_numbers_stand_right_aligned_under_right_aligned_headers() -> None:
    text = _format_table(
        ["strategy", "trades", "status", "expectancy"],
        [["ema_trend", 1200, "active", -0.5], ["breakout", 7, "suspended", None]],
    )
    header, _, first, second = text.splitlines()
    # A numeric column's header ends where its numbers end.
    assert header.index("trades") + len("trades") == first.index("1200") + len("1200")
    assert second.index("7") == first.index("1200") + len("1200") - 1
    assert header.endswith("expectancy") and first.endswith("-0.5") and second.endswith("-")
    # Text columns stay left-aligned under their header.
    assert header.index("status") == first.index("active") == second.index("suspended")


def test_preformatted_numbers_and_percentages_count_as_numbers() -> None:
    text = _format_table(["", "change"], [["pnl", "+453.0%"], ["dd", "−48.4%"], ["x", "-"]])
    lines = text.splitlines()
    assert {len(line) for line in lines} == {len(lines[0])}


def test_a_replays_weights_stand_right_aligned_with_their_marks() -> None:
    # A weight marked suspended and a strategy not registered yet are still numbers of
    # the column: it once turned left-aligned under its header.
    text = _format_table(
        ["strategy", "2024-01-01", "2024-02-01"],
        [["ema", "-", "1.12"], ["breakout", "0.65 (s)", "0.40 (s)"], ["rsi", "1.00", "0.98"]],
    )
    header, _, *rows = text.splitlines()
    assert {len(line) for line in (header, *rows)} == {len(header)}
    assert rows[0].endswith("1.12") and rows[1].endswith("0.40 (s)")


def test_times_are_utc_with_their_age() -> None:
    assert utc_time(1_732_000_000_000) == "2024-11-19 07:06:40"
    assert [age(ms) for ms in (44_000, 12 * 60_000, 5_400_000, 8 * 86_400_000)] == [
        "44s",
        "12m",
        "1.5h",
        "8.0d",
    ]

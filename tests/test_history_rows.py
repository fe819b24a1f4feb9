"""History rows: any run of cycles, stored as keyframes and deltas, is rebuilt exactly."""

from __future__ import annotations

import msgspec
from hypothesis import example, given, settings
from hypothesis import strategies as st

from alphad.actors.history_rows import KEYFRAME_EVERY, Chain, Row, next_row, rebuild
from alphad.protocol.messages import OptimizationState

names = st.sampled_from([f"s{i}" for i in range(8)])
weights = st.dictionaries(names, st.sampled_from([0.0, -0.0, 0.5, 1.0, 0.7224999999999999]))
statuses = st.dictionaries(names, st.sampled_from(["active", "degraded", "suspended"]))
runs = st.lists(st.tuples(weights, statuses, st.integers(1, 3)), min_size=1, max_size=40)


def write(run: list[tuple[dict[str, float], dict[str, str], int]]) -> tuple[list, list[Row]]:
    chain: Chain | None = None
    states, rows, cycle = [], [], 0
    for w, s, step in run:
        cycle += step
        state = OptimizationState(cycle=cycle, ts_ms=cycle, regime=None, weights=w, statuses=s)
        row, chain = next_row(chain, state)
        states.append(state)
        rows.append(row)
    return states, rows


@settings(max_examples=200, deadline=None)
@given(runs)
# A weight of 0.0 that becomes -0.0 is a change (equal as numbers, not as the state).
@example([({"s0": 0.0}, {}, 1), ({"s0": -0.0}, {}, 1)])
# A name dropped from one map only, then back.
@example([({"s0": 1.0}, {"s0": "active"}, 1), ({}, {"s0": "active"}, 1), ({"s0": 1.0}, {}, 1)])
# A new name ahead of a kept one: the maps' order is the state's too.
@example([({}, {"s0": "active"}, 1), ({}, {"s1": "active", "s0": "active"}, 1)])
def test_rows_rebuild_the_states_bit_for_bit(
    run: list[tuple[dict[str, float], dict[str, str], int]],
) -> None:
    states, rows = write(run)
    rebuilt = rebuild((r.cycle, r.state, r.keyframe) for r in rows)
    assert msgspec.msgpack.encode(rebuilt) == msgspec.msgpack.encode(states)
    assert rows[0].keyframe is None
    for row in rows:
        assert row.full_bytes == len(msgspec.msgpack.encode(states[rows.index(row)]))
        # Each delta names the keyframe of its group, a row in the run before it.
        assert row.keyframe is None or any(
            r.cycle == row.keyframe and r.keyframe is None for r in rows
        )


def test_a_keyframe_every_keyframe_every_rows_when_few_weights_move() -> None:
    many = {f"strategy_{i:04d}": 1.0 for i in range(1000)}
    run = [({**many, "strategy_0001": 1.0 + c % 2 / 8}, {}, 1) for c in range(2 * KEYFRAME_EVERY)]
    _, rows = write(run)
    frames = [r.cycle for r in rows if r.keyframe is None]
    assert frames == [1, 1 + KEYFRAME_EVERY]
    assert max(len(r.state) for r in rows if r.keyframe is not None) < 200

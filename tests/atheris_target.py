"""A coverage-guided fuzz target for what the gateway does with a payload before replying.

Run it with atheris (not installed by the project; ``pip install atheris``)::

    python -m tests.atheris_target -atheris_runs=2000000 -max_len=4096

Every input is decoded, admitted and, for ``score_signal``, scored and encoded exactly
as the gateway's inline route does, in one process with the real models. The target
fails on any exception the gateway would map to ``internal`` and on any reply that
breaks a promise of the protocol: quality above the bot's confidence, a size above 2.0,
a size for a refused signal, a reply that does not survive its own encoding. The
``test_fuzz`` suite runs the same ``one_input`` on random bytes, so the target is kept
working in CI; the end-to-end fuzz tests there send the same kinds of input to a real
daemon.
"""

from __future__ import annotations

import math
import sys

import msgspec

from alphad.actors.admission import Admission
from alphad.actors.errors import Refused
from alphad.actors.scorer_config import ScorerConfig
from alphad.actors.scorer_model import ScorerModel
from alphad.daemon.errors import error_code
from alphad.protocol.codec import decode_reply, decode_request, encode
from alphad.protocol.errors import ERROR_CODES
from alphad.protocol.messages import (
    RecordSignalOutcome,
    RecordTrade,
    ScoreSignal,
    SignalScore,
)

MAX_SIZE_MULTIPLIER = 2.0

admission = Admission(
    configured=(),
    auto_register=True,
    max_strategies=64,
    max_symbols=64,
    max_regimes=8,
)
scorer = ScorerModel(ScorerConfig(), "fuzz")


def one_input(data: bytes) -> None:
    """Handle one payload as the gateway would; raise AssertionError on a broken promise."""
    try:
        request = decode_request(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        code, _ = error_code(exc)
        assert code in ("bad_request", "unknown_type"), code
        return
    # Whatever decodes must encode again to the same message.
    assert decode_request(encode(request)) == request
    try:
        if isinstance(request, ScoreSignal):
            admission.admit(request.strategy, request.symbol, request.regime)
            _check_score(request, scorer.score(request))
        elif isinstance(request, RecordTrade):
            admission.admit(request.strategy, request.symbol, request.regime)
            assert math.isfinite(request.pnl)
            if request.signal_id is not None:
                scorer.record_outcome(request.signal_id, request.pnl > 0)
        elif isinstance(request, RecordSignalOutcome):
            scorer.record_outcome(request.signal_id, request.success)
    except Refused as exc:
        code, _ = error_code(exc)
        assert code in ERROR_CODES and code != "internal", code


def _check_score(request: ScoreSignal, reply: SignalScore) -> None:
    assert 0.0 <= reply.quality <= request.confidence, (reply.quality, request.confidence)
    assert 0.0 <= reply.size_multiplier <= MAX_SIZE_MULTIPLIER, reply.size_multiplier
    if not reply.execute:
        assert reply.size_multiplier == 0.0, reply.size_multiplier
    assert decode_reply(encode(reply)) == reply


def main() -> None:
    import atheris  # type: ignore[import-not-found]

    atheris.instrument_all()  # coverage of everything loaded: codec, models, admission
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

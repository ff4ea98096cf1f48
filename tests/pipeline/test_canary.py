"""Canary roll-outs, the pure parts: the split, the gate arithmetic, what a record counts as,
and the configuration's checks."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from passerelle.config import parse_config
from passerelle.config.schema import Canary, CanaryGates
from passerelle.core.context import RequestIds
from passerelle.errors import ConfigError
from passerelle.pipeline.canary import bucket, drawn_for_canary, fingerprint, stage_points
from passerelle.pipeline.canary_gates import (
    Action,
    ArmFigures,
    FeedbackFigures,
    GateState,
    LatencySketch,
    Window,
    judge,
    outcome_of,
)

# -- the split ------------------------------------------------------------------------------------


@pytest.mark.parametrize("share", [500, 2500, 5000])
def test_the_split_meets_the_share_within_four_standard_deviations(share: int) -> None:
    ids = RequestIds()
    n = 100_000
    drawn = sum(drawn_for_canary(ids.new(), share) for _ in range(n))
    p = share / 10_000
    sigma = math.sqrt(n * p * (1 - p))
    # 4 sigma: a correct split fails this about once in 16 000 runs.
    assert abs(drawn - n * p) < 4 * sigma, (drawn, n * p, sigma)


def test_the_split_is_a_function_of_the_request_id() -> None:
    ids = RequestIds()
    for _ in range(1000):
        request_id = ids.new()
        assert bucket(request_id) == bucket(request_id)
        assert 0 <= bucket(request_id) < 10_000
        # Nested stages: a request drawn at 5 % is drawn at every later stage too.
        if drawn_for_canary(request_id, 500):
            assert drawn_for_canary(request_id, 2500) and drawn_for_canary(request_id, 10_000)
    assert not drawn_for_canary("req_anything", 0)
    assert drawn_for_canary("req_anything", 10_000)


def test_the_fingerprint_covers_routes_and_stages_not_gates() -> None:
    base = Canary.model_validate({"routes": [{"provider": "p", "model": "new"}]})
    assert stage_points(base) == (500, 2500, 5000, 10_000)
    same = Canary.model_validate(
        {
            "routes": [{"provider": "p", "model": "new", "weight": 2}],
            "min_requests": 5,
            "gates": {"max_error_rate": 0.2},
        }
    )
    assert fingerprint(same) == fingerprint(base)
    other_stages = Canary.model_validate(
        {"routes": [{"provider": "p", "model": "new"}], "stages": [10, 100]}
    )
    other_model = Canary.model_validate({"routes": [{"provider": "p", "model": "newer"}]})
    assert len({fingerprint(base), fingerprint(other_stages), fingerprint(other_model)}) == 3


# -- latency sketch -------------------------------------------------------------------------------


def test_the_sketch_p95_is_within_two_percent_above_the_exact_value() -> None:
    rng = random.Random(7)
    for _ in range(20):
        values = [rng.lognormvariate(5, 1.2) for _ in range(rng.randint(1, 3000))]
        sketch = LatencySketch()
        for value in values:
            sketch.add(value)
        exact = sorted(values)[math.ceil(0.95 * len(values)) - 1]
        estimate = sketch.quantile(0.95)
        assert estimate is not None
        assert exact <= estimate * 1.000001 and estimate <= exact * 1.02 + 1e-9


def test_an_empty_sketch_has_no_quantile() -> None:
    assert LatencySketch().quantile(0.95) is None


# -- gates ----------------------------------------------------------------------------------------


def canary(**overrides: Any) -> Canary:
    spec: dict[str, Any] = {
        "routes": [{"provider": "p", "model": "new"}],
        "min_requests": 100,
        "min_duration_s": 60,
    }
    spec.update(overrides)
    return Canary.model_validate(spec)


def window(
    canary_arm: ArmFigures,
    stable: ArmFigures = ArmFigures(1000, 10, 200.0),  # noqa: B008 - immutable
    *,
    elapsed_s: float = 120,
    feedback: FeedbackFigures = FeedbackFigures(),  # noqa: B008 - immutable
    previous: ArmFigures | None = None,
) -> Window:
    return Window(1, 25, 0, elapsed_s, canary_arm, stable, feedback, previous)


def states(verdict: Any) -> dict[str, GateState]:
    return {check.gate: check.state for check in verdict.checks}


def test_a_healthy_stage_advances_once_both_minimums_are_met() -> None:
    healthy = ArmFigures(100, 1, 210.0)
    verdict = judge(canary(), window(healthy))
    assert verdict.action is Action.ADVANCE
    assert states(verdict) == {
        "error_rate": GateState.PASS,
        "error_rate_increase": GateState.PASS,
        "p95_ratio": GateState.PASS,
        "negative_feedback": GateState.WAITING,  # too few ratings: does not hold it back
    }
    assert verdict.reference == "window"
    assert judge(canary(), window(healthy, elapsed_s=59)).action is Action.WAIT
    short = judge(canary(), window(ArmFigures(99, 0, 210.0)))
    assert short.action is Action.WAIT and "99/100 canary requests" in short.reason
    assert set(states(short).values()) == {GateState.WAITING}


def test_errors_roll_back_as_soon_as_the_sample_is_met_without_waiting_for_the_time() -> None:
    verdict = judge(canary(), window(ArmFigures(100, 6, 200.0), elapsed_s=1))
    assert verdict.action is Action.ROLLBACK
    assert states(verdict)["error_rate"] is GateState.FAIL
    assert "error_rate 0.06 > 0.05 (n=100)" in verdict.reason


def test_the_increase_over_stable_fails_under_the_absolute_ceiling() -> None:
    # 4 % is under the 5 % ceiling, but 3 points above a stable 1 %.
    verdict = judge(canary(), window(ArmFigures(100, 4, 200.0)))
    assert verdict.action is Action.ROLLBACK
    assert states(verdict) == {
        "error_rate": GateState.PASS,
        "error_rate_increase": GateState.FAIL,
        "p95_ratio": GateState.PASS,
        "negative_feedback": GateState.WAITING,
    }
    # Exactly at the limit passes: 3 % over 1 % is two points.
    assert judge(canary(), window(ArmFigures(100, 3, 200.0))).action is Action.ADVANCE


def test_latency_ratio_fails_only_beyond_the_tolerance() -> None:
    fast_stable = ArmFigures(1000, 0, 4.0)
    # Three times slower, but 8 ms more: noise for a gate on model latency.
    noise = judge(canary(), window(ArmFigures(100, 0, 12.0), fast_stable))
    assert noise.action is Action.ADVANCE
    slow = judge(canary(), window(ArmFigures(100, 0, 400.0)))
    assert slow.action is Action.ROLLBACK and states(slow)["p95_ratio"] is GateState.FAIL
    absolute = canary(gates={"max_p95_ms": 300, "max_p95_ratio": None})
    assert judge(absolute, window(ArmFigures(100, 0, 310.0))).action is Action.ROLLBACK
    assert judge(absolute, window(ArmFigures(100, 0, 290.0))).action is Action.ADVANCE


def test_negative_feedback_counts_from_its_minimum_of_ratings() -> None:
    gates = {"max_negative_ratio": 0.3, "min_ratings": 10}
    few = window(ArmFigures(100, 0, 200.0), feedback=FeedbackFigures(up=1, down=8))
    assert judge(canary(gates=gates), few).action is Action.ADVANCE
    enough = window(ArmFigures(3, 0, 200.0), elapsed_s=1, feedback=FeedbackFigures(6, 4))
    verdict = judge(canary(gates=gates), enough)
    # Feedback decides on its own sample: three requests are not enough for the other gates.
    assert verdict.action is Action.ROLLBACK
    assert states(verdict)["negative_feedback"] is GateState.FAIL
    assert states(verdict)["error_rate"] is GateState.WAITING


def test_without_stable_requests_the_previous_stage_is_the_reference() -> None:
    empty = ArmFigures(0, 0, None)
    previous = ArmFigures(500, 5, 200.0)
    verdict = judge(canary(), window(ArmFigures(100, 5, 250.0), empty, previous=previous))
    assert verdict.reference == "previous_stage"
    assert states(verdict)["error_rate_increase"] is GateState.FAIL  # 5 % vs 1 %
    alone = judge(canary(), window(ArmFigures(100, 1, 250.0), empty))
    assert alone.reference is None and alone.action is Action.ADVANCE
    assert states(alone)["error_rate_increase"] is GateState.SKIPPED
    assert states(alone)["p95_ratio"] is GateState.SKIPPED


def test_no_gate_configured_still_needs_the_minimums() -> None:
    bare = canary(
        gates=CanaryGates(
            max_error_rate=None,
            max_error_rate_increase=None,
            max_p95_ratio=None,
            max_negative_ratio=None,
        ).model_dump()
    )
    assert judge(bare, window(ArmFigures(100, 100, None))).action is Action.ADVANCE
    assert judge(bare, window(ArmFigures(10, 0, None))).action is Action.WAIT


def test_the_verdict_serialises_its_figures() -> None:
    verdict = judge(canary(), window(ArmFigures(100, 6, 200.0)))
    data = verdict.as_json()
    assert data["decision"] == "rollback" and data["canary"]["error_rate"] == 0.06
    assert data["stable"] == {"requests": 1000, "errors": 10, "error_rate": 0.01, "p95_ms": 200.0}
    assert ArmFigures.from_json(data["stable"]) == ArmFigures(1000, 10, 200.0)
    assert ArmFigures.from_json("nonsense") is None


# -- what a record counts as ---------------------------------------------------------------------

CANARY = frozenset({("fresh", "new-model")})


def record(
    *,
    arm: str = "canary",
    sent: bool = True,
    status: int = 200,
    provider: str = "fresh",
    route_model: str = "new-model",
    stream: bool = False,
    attempts: int = 1,
    stage: int = 0,
    ts: int = 10,
) -> dict[str, Any]:
    return {
        "ts_us": ts,
        "status": status,
        "provider": provider,
        "details": {
            "rollout": {"id": 7, "stage": stage, "percent": 25, "arm": arm},
            "canary": sent,
            "attempts": [{"provider": provider}] * attempts,
            "route_model": route_model,
            "stream": stream,
            "latency_ms": 120.0,
            "first_byte_ms": 30.0,
        },
    }


def counted(payload: dict[str, Any]) -> Any:
    return outcome_of(payload, 7, 0, 5, CANARY)


def test_what_a_request_counts_as() -> None:
    ok = counted(record())
    assert (ok.canary, ok.error, ok.latency_ms) == (True, False, 120.0)
    assert counted(record(stream=True)).latency_ms == 30.0  # time to the first byte
    failed = counted(record(status=502))
    assert (failed.error, failed.latency_ms) == (True, None)
    # The caller got an answer, from the stable fallback: an error of the new version.
    fallback = counted(record(provider="primary", route_model="old-model"))
    assert fallback.canary and fallback.error
    caller_mistake = counted(record(status=400))
    assert (caller_mistake.error, caller_mistake.latency_ms) == (False, None)
    stable = counted(record(arm="stable", sent=False, provider="primary", route_model="old"))
    assert (stable.canary, stable.error, stable.latency_ms) == (False, False, 120.0)
    assert counted(record(arm="stable", sent=False, status=503)).error


def test_what_is_outside_the_window() -> None:
    assert counted(record(attempts=0)) is None  # never reached a route
    assert counted(record(sent=False)) is None  # drawn for the canary, routes removed
    assert counted(record(stage=1)) is None
    assert counted(record(ts=4)) is None  # before the window opened (a resume)
    assert outcome_of(record(), 8, 0, 5, CANARY) is None  # another roll-out
    assert counted({"details": {}, "status": 200}) is None
    # A token count the new version's provider does not serve: its stable fallback answers,
    # and it is no sample of the new version.
    unsupported = record(provider="primary", route_model="old-model")
    unsupported["details"]["attempts"] = [
        {"provider": "fresh", "model": "new-model", "status": None, "error": "route_unsupported"},
        {"provider": "primary", "model": "old-model", "status": 200, "error": None},
    ]
    assert counted(unsupported) is None


# -- configuration --------------------------------------------------------------------------------

CONFIG = """\
version: 1
providers:
  old: {{kind: openai_compatible, base_url: "http://127.0.0.1:9/v1", region: eu,
        clearance: restricted}}
  new: {{kind: openai_compatible, base_url: "http://127.0.0.1:9/v1", region: eu,
        clearance: internal}}
models:
  chat:
    routes: [{{provider: old, model: m1}}]
    canary:
{canary}
"""


def parse(canary_block: str) -> Any:
    indented = "\n".join("      " + line for line in canary_block.strip().splitlines())
    return parse_config(CONFIG.format(canary=indented), source="t.yaml")


def test_a_canary_block_with_its_defaults() -> None:
    config = parse("routes: [{provider: new, model: m2}]")
    spec = config.models["chat"].canary
    assert spec is not None
    assert spec.stages == [5, 25, 50, 100] and spec.min_requests == 100
    assert spec.gates.max_error_rate == 0.05 and spec.start == "auto"


@pytest.mark.parametrize(
    ("block", "message", "line"),
    [
        ("routes: [{provider: nope, model: m2}]", "canary route to unknown provider 'nope'", 11),
        ("routes: [{provider: old, model: m1}]", "is also a stable route of 'chat'", 11),
        ("routes: [{provider: new, model: m2}]\nstages: [5, 50]", "last stage must be 100", 12),
        ("routes: [{provider: new, model: m2}]\nstages: [50, 25, 100]", "strictly increasing", 12),
        ("routes: [{provider: new, model: m2}]\nstages: [0.001, 100]", "two decimals", 12),
        ("routes: [{provider: new, model: m2}]\ngates: {max_error_rat: 1}", "unknown key", 12),
        ("routes: []", "at least 1 item", 11),
    ],
)
def test_canary_mistakes_name_their_line(block: str, message: str, line: int) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(block)
    assert message in str(raised.value)
    assert raised.value.line == line

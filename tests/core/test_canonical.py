from __future__ import annotations

import pytest

from passerelle.core.canonical import (
    ErrorType,
    ImagePart,
    Media,
    PartKind,
    ReasoningConfig,
    ReasoningPart,
    Response,
    StopReason,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    Usage,
    budget_for_effort,
    effort_for_budget,
    error_type_for_status,
    status_for_error_type,
)
from passerelle.core.translation import Loss, LossLog, Translated, dropped_header_value


def test_parts_carry_their_kind() -> None:
    assert TextPart("x").kind is PartKind.TEXT
    assert ImagePart(Media(url="https://example.com/a.png")).kind is PartKind.IMAGE
    assert ToolCallPart("c", "f").kind is PartKind.TOOL_CALL
    assert ToolResultPart("c").kind is PartKind.TOOL_RESULT
    assert ReasoningPart().kind is PartKind.REASONING


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"data": "AA==", "url": "https://example.com"}, {"url": "u", "file_id": "f"}],
)
def test_media_needs_exactly_one_source(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Media(media_type="image/png", **kwargs)


def test_effort_and_budget_convert_both_ways() -> None:
    assert budget_for_effort("none") == 0
    assert budget_for_effort("low") < budget_for_effort("medium") < budget_for_effort("high")
    assert budget_for_effort("unknown") == budget_for_effort("medium")
    for effort in ("low", "medium", "high"):
        assert effort_for_budget(budget_for_effort(effort)) == effort
    assert effort_for_budget(0) == "none"
    assert ReasoningConfig(effort="none").disabled
    assert ReasoningConfig(budget_tokens=0).disabled
    assert not ReasoningConfig().disabled


def test_usage_total_and_response_text() -> None:
    usage = Usage(input_tokens=10, output_tokens=5, cached_input_tokens=4, reasoning_tokens=2)
    assert usage.total_tokens == 15
    response = Response(
        "r", "m", (TextPart("a"), ToolCallPart("c", "f"), TextPart("b")), StopReason.END_TURN
    )
    assert response.text() == "ab"


def test_error_types_and_statuses() -> None:
    assert error_type_for_status(429) is ErrorType.RATE_LIMIT
    assert error_type_for_status(529) is ErrorType.OVERLOADED
    assert error_type_for_status(418) is ErrorType.INVALID_REQUEST
    assert error_type_for_status(500) is ErrorType.SERVER
    for error_type in ErrorType:
        assert error_type_for_status(status_for_error_type(error_type)) in (
            error_type,
            ErrorType.SERVER,
        )


def test_loss_log_keeps_first_place_of_each_name() -> None:
    log = LossLog()
    assert not log
    log.add("anthropic.cache_control", "system")
    log.add("anthropic.cache_control", "messages[1]")
    log.add("seed")
    assert log.losses() == (Loss("anthropic.cache_control", "system"), Loss("seed"))
    result = Translated(1, log.losses())
    assert result.loss_names == ("anthropic.cache_control", "seed")
    header = dropped_header_value(log.losses(), [Loss("seed"), Loss("openai.logprobs")])
    assert header == "anthropic.cache_control, seed, openai.logprobs"


def test_gateway_errors_become_canonical() -> None:
    from passerelle.core.canonical import error_info
    from passerelle.errors import PermissionDenied

    info = error_info(PermissionDenied("Blocked by rule 'client-names'.", code="dlp_blocked"))
    assert info.status == 403 and info.type is ErrorType.PERMISSION
    assert info.code == "dlp_blocked"


def test_loss_names_cannot_smuggle_header_content() -> None:
    log = LossLog()
    log.add("openai.evil\r\nSet-Cookie: x=1", "evil\nkey")
    (loss,) = log.losses()
    assert "\r" not in loss.name and "\n" not in loss.name and " " not in loss.name
    assert dropped_header_value(log.losses()).isascii()
    log.add("gemini." + "x" * 500)
    assert all(len(loss.name) <= 80 for loss in log.losses())

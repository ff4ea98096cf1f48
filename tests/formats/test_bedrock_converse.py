"""The Bedrock Converse codec on what only Converse has: union blocks, cache points, documents
that need names, S3 locations, model families behind ``additionalModelRequestFields``, answers
without ids, exceptions named in a header or a frame, and ConverseStream's event dicts."""

from __future__ import annotations

from typing import Any

import pytest

from passerelle.core.canonical import (
    CacheControl,
    DocumentPart,
    ErrorInfo,
    ErrorType,
    ImagePart,
    Media,
    Message,
    ReasoningConfig,
    ReasoningPart,
    Request,
    Response,
    ResponseFormat,
    ResponseFormatKind,
    Role,
    Sampling,
    StopReason,
    TextPart,
    ToolCallPart,
    ToolChoice,
    ToolChoiceMode,
    ToolDefinition,
    ToolResultPart,
    Usage,
    Vendor,
)
from passerelle.core.opaque import seal
from passerelle.core.stream import (
    MessageDelta,
    MessageStart,
    MessageStop,
    PartStart,
    PartStop,
    ReasoningDelta,
    SignatureDelta,
    StreamError,
    StreamEvent,
    TextDelta,
    ToolArgsDelta,
)
from passerelle.errors import InvalidRequest
from passerelle.formats import bedrock_converse as converse
from passerelle.formats.aws_eventstream import EventStreamMessage, decode_all, encode_message
from passerelle.formats.bedrock_converse_stream import (
    ConverseStreamDecoder,
    ConverseStreamEncoder,
    event_from_frame,
    frame_from_event,
)
from passerelle.testing import fake_bedrock
from tests.formats import samples
from tests.formats.registry import FORMATS

PNG = samples.PNG
USER = {"role": "user", "content": [{"text": "hi"}]}
WEATHER = ToolDefinition("get_weather", "Weather", samples.WEATHER_SCHEMA)


def decode(body: dict[str, Any]) -> tuple[Request, tuple[str, ...]]:
    decoded = converse.decode_request(body, model="m")
    return decoded.value, decoded.loss_names


def encode(request: Request, **options: Any) -> tuple[dict[str, Any], tuple[str, ...]]:
    encoded = converse.encode_request(request, **options)
    return encoded.value, encoded.loss_names


def ask(*parts: Any, **fields: Any) -> Request:
    return Request("m", (Message(Role.USER, tuple(parts)),), **fields)


# -- requests: decoding ---------------------------------------------------------------------------


def test_fields_without_canonical_meaning_are_losses() -> None:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "hi"},
                    {"guardContent": {"text": {"text": "checked"}}},
                    {"video": {"format": "mp4", "source": {"bytes": "AAAA"}}},
                ],
            }
        ],
        "system": [{"text": "Be brief."}, {"guardContent": {"text": {"text": "x"}}}],
        "guardrailConfig": {"guardrailIdentifier": "g", "guardrailVersion": "1"},
        "inferenceConfig": {"maxTokens": 10, "someFutureKnob": 1},
        "toolConfig": {"tools": [{"systemTool": {"name": "nova_grounding"}}]},
        "additionalModelRequestFields": {"anthropic_beta": ["interleaved-thinking-2025-05-14"]},
    }
    request, losses = decode(body)
    assert set(losses) == {
        "bedrock.guardContent",
        "bedrock.video",
        "bedrock.guardrailConfig",
        "bedrock.inferenceConfig.someFutureKnob",
        "bedrock.systemTool",
        "bedrock.additionalModelRequestFields.anthropic_beta",
    }
    assert request.messages[0].parts == (TextPart("hi"),)
    assert request.system == (TextPart("Be brief."),)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": [{"text": "a", "image": {}}]}]}, "content[0]"),
        ({"messages": [{"role": "system", "content": [{"text": "a"}]}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": [{"text": 3}]}]}, "content[0].text"),
        ({"system": [{"text": "a"}]}, "messages"),
        (
            {"messages": [{"role": "user", "content": [{"image": {"format": "bmp"}}]}]},
            "image.format",
        ),
        ({"messages": [USER], "toolConfig": {"toolChoice": {"none": {}}}}, "toolChoice"),
    ],
)
def test_malformed_requests_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        decode(body)
    assert raised.value.param is not None and raised.value.param.endswith(param)


def test_cache_points_mark_the_part_before_them() -> None:
    body: dict[str, Any] = {
        "system": [{"text": "A long preamble."}, {"cachePoint": {"type": "default", "ttl": "1h"}}],
        "messages": [
            {"role": "user", "content": [{"text": "hi"}, {"cachePoint": {"type": "default"}}]}
        ],
        "toolConfig": {
            "tools": [
                {"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object"}}}},
                {"cachePoint": {"type": "default"}},
            ]
        },
    }
    request, losses = decode(body)
    assert losses == ()
    assert request.system[0].cache == CacheControl(ttl="1h")
    assert request.messages[0].parts[0] == TextPart("hi", cache=CacheControl())
    assert request.tools[0].cache == CacheControl()
    back, _ = encode(request)
    assert back["system"] == body["system"]
    assert back["messages"] == body["messages"]
    assert back["toolConfig"]["tools"] == body["toolConfig"]["tools"]
    anthropic = FORMATS["anthropic"].encode_request(request).value
    assert anthropic["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}


def test_a_cache_point_with_nothing_before_it_is_a_loss() -> None:
    _, losses = decode({"messages": [{"role": "user", "content": [{"cachePoint": {}}]}]})
    assert losses == ("bedrock.cachePoint",)


def test_documents_of_every_source() -> None:
    content = [
        {"document": {"format": "md", "name": "notes", "source": {"text": "# Title"}}},
        {
            "document": {
                "format": "txt",
                "name": "parts",
                "source": {"content": [{"text": "one"}, {"text": "two"}]},
            }
        },
        {
            "document": {
                "format": "pdf",
                "name": "report",
                "source": {"s3Location": {"uri": "s3://bucket/report.pdf"}},
                "citations": {"enabled": True},
            }
        },
        {"image": {"format": "jpeg", "source": {"s3Location": {"uri": "s3://bucket/a.jpg"}}}},
    ]
    request, losses = decode({"messages": [{"role": "user", "content": content}]})
    assert losses == ("bedrock.document.citations",)
    notes, parts, report, image = request.messages[0].parts
    assert notes == DocumentPart(Media(media_type="text/plain", data="IyBUaXRsZQ=="), "notes")
    assert isinstance(parts, DocumentPart) and parts.media.data == "b25lCgp0d28="
    assert report == DocumentPart(
        Media(media_type="application/pdf", url="s3://bucket/report.pdf"), "report"
    )
    assert image == ImagePart(Media(media_type="image/jpeg", url="s3://bucket/a.jpg"))
    back, back_losses = encode(request)
    assert back_losses == ()
    blocks = back["messages"][0]["content"]
    assert blocks[0]["document"] == {
        "format": "txt",
        "name": "notes",
        "source": {"bytes": "IyBUaXRsZQ=="},
    }
    assert blocks[2]["document"]["source"] == {"s3Location": {"uri": "s3://bucket/report.pdf"}}
    assert blocks[3]["image"]["source"] == {"s3Location": {"uri": "s3://bucket/a.jpg"}}


def test_tool_results_with_json_images_and_errors() -> None:
    body = {
        "messages": [
            USER,
            {
                "role": "assistant",
                "content": [{"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}}],
            },
            {
                "role": "user",
                "content": [
                    {
                        "toolResult": {
                            "toolUseId": "t1",
                            "content": [
                                {"json": {"state": "open"}},
                                {"image": {"format": "png", "source": {"bytes": PNG}}},
                            ],
                            "status": "error",
                        }
                    }
                ],
            },
        ],
        "toolConfig": {"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {}}}}]},
    }
    request, _ = decode(body)
    result = request.messages[2].parts[0]
    assert result == ToolResultPart(
        "t1",
        (TextPart('{"state":"open"}'), ImagePart(Media(media_type="image/png", data=PNG))),
        is_error=True,
    )
    back, _ = encode(request)
    assert back["messages"][2]["content"][0]["toolResult"] == {
        "toolUseId": "t1",
        "content": [
            {"text": '{"state":"open"}'},
            {"image": {"format": "png", "source": {"bytes": PNG}}},
        ],
        "status": "error",
    }


def test_reasoning_history_keeps_its_state() -> None:
    foreign = ReasoningPart("", signature="CiQBVKhc", origin=Vendor.GEMINI)
    content = [
        {"reasoningContent": {"redactedContent": "EmwKAhgB"}},
        {"reasoningContent": {"reasoningText": {"text": "hm", "signature": "EqQB"}}},
        {"reasoningContent": {"reasoningText": {"text": "", "signature": seal(foreign)}}},
        {"text": "ok"},
    ]
    request, _ = decode({"messages": [USER, {"role": "assistant", "content": content}]})
    redacted, signed, unsealed, _ = request.messages[1].parts
    assert redacted == ReasoningPart(encrypted="EmwKAhgB", origin=Vendor.ANTHROPIC)
    assert signed == ReasoningPart("hm", signature="EqQB", origin=Vendor.ANTHROPIC)
    assert unsealed == foreign
    back, losses = encode(request)
    assert back["messages"][1]["content"][:2] == content[:2]
    assert losses == ("gemini.thought",)


@pytest.mark.parametrize(
    ("fields", "reasoning", "top_k"),
    [
        (
            {"thinking": {"type": "enabled", "budget_tokens": 4000}},
            ReasoningConfig(budget_tokens=4000),
            None,
        ),
        ({"thinking": {"type": "disabled"}, "top_k": 40}, ReasoningConfig(effort="none"), 40),
        (
            {"thinking": {"type": "adaptive", "display": "omitted"}},
            ReasoningConfig(summary=False),
            None,
        ),
        (
            {"reasoningConfig": {"type": "enabled", "maxReasoningEffort": "high"}},
            ReasoningConfig(effort="high"),
            None,
        ),
        ({"reasoningConfig": {"type": "disabled"}}, ReasoningConfig(effort="none"), None),
        ({"reasoning_effort": "low"}, ReasoningConfig(effort="low"), None),
    ],
)
def test_additional_fields_of_each_model_family(
    fields: dict[str, Any], reasoning: ReasoningConfig, top_k: int | None
) -> None:
    request, losses = decode({"messages": [USER], "additionalModelRequestFields": fields})
    assert losses == ()
    assert request.reasoning == reasoning and request.sampling.top_k == top_k


def test_tool_choices_output_config_and_metadata() -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    body: dict[str, Any] = {
        "messages": [USER],
        "toolConfig": {
            "tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {}}, "strict": True}}],
            "toolChoice": {"tool": {"name": "f"}},
        },
        "outputConfig": {
            "textFormat": {
                "type": "json_schema",
                "structure": {
                    "jsonSchema": {
                        "schema": '{"type":"object","properties":{"answer":{"type":"string"}}}',
                        "name": "answer",
                    }
                },
            }
        },
        "requestMetadata": {"team": "search"},
    }
    request, losses = decode(body)
    assert losses == ()
    assert request.tool_choice == ToolChoice(ToolChoiceMode.TOOL, "f")
    assert request.tools[0].strict is True
    assert request.response_format == ResponseFormat(
        ResponseFormatKind.JSON_SCHEMA, schema=schema, name="answer"
    )
    assert request.metadata == {"team": "search"}
    back, _ = encode(request)
    assert back["toolConfig"] == body["toolConfig"]
    assert back["outputConfig"] == body["outputConfig"]
    assert back["requestMetadata"] == {"team": "search"}
    body["toolConfig"]["toolChoice"] = {"any": {}}
    assert decode(body)[0].tool_choice == ToolChoice(ToolChoiceMode.REQUIRED)


# -- requests: encoding ---------------------------------------------------------------------------


def test_other_model_families_get_no_anthropic_fields() -> None:
    signed = ReasoningPart("hm", signature="EqQB", origin=Vendor.ANTHROPIC)
    request = Request(
        "m",
        (
            Message(Role.USER, (TextPart("hi"),)),
            Message(Role.ASSISTANT, (signed, TextPart("hello"))),
            Message(Role.USER, (TextPart("more"),)),
        ),
        sampling=Sampling(temperature=0.3, top_k=20),
        reasoning=ReasoningConfig(effort="high"),
    )
    body, losses = encode(request, model_family=converse.ModelFamily.OTHER)
    assert "additionalModelRequestFields" not in body
    assert body["inferenceConfig"] == {"temperature": 0.3}
    assert set(losses) == {"reasoning", "top_k", "anthropic.thinking"}
    assert body["messages"][1]["content"] == [{"text": "hello"}]
    claude, claude_losses = encode(request)
    assert claude["additionalModelRequestFields"] == {
        "thinking": {"type": "enabled", "budget_tokens": converse.DEFAULT_MAX_TOKENS - 1}
    }
    assert claude["inferenceConfig"] == {"maxTokens": converse.DEFAULT_MAX_TOKENS}
    assert set(claude_losses) == {"temperature", "top_k"}


def test_thinking_needs_a_signed_tool_turn() -> None:
    request = Request(
        "m",
        (
            Message(Role.USER, (TextPart("hi"),)),
            Message(Role.ASSISTANT, (ToolCallPart("call_1", "get_weather", '{"city":"Paris"}'),)),
            Message(Role.USER, (ToolResultPart("call_1", (TextPart("sunny"),)),)),
        ),
        tools=(WEATHER,),
        sampling=Sampling(max_tokens=4000, temperature=1.5),
        reasoning=ReasoningConfig(budget_tokens=2000),
    )
    body, losses = encode(request)
    assert "additionalModelRequestFields" not in body
    assert set(losses) == {"reasoning", "temperature"}
    assert body["inferenceConfig"] == {"maxTokens": 4000, "temperature": 1.0}


def test_tool_choice_none() -> None:
    none = ToolChoice(ToolChoiceMode.NONE)
    body, losses = encode(ask(TextPart("hi"), tool_choice=none, tools=(WEATHER,)))
    assert "toolConfig" not in body and losses == ()
    request = Request(
        "m",
        (
            Message(Role.USER, (TextPart("hi"),)),
            Message(Role.ASSISTANT, (ToolCallPart("call_1", "get_weather", "{}"),)),
            Message(Role.USER, (ToolResultPart("call_1", (TextPart("sunny"),)),)),
        ),
        tools=(WEATHER,),
        tool_choice=none,
        parallel_tool_calls=False,
    )
    body, losses = encode(request)
    assert "toolChoice" not in body["toolConfig"] and len(body["toolConfig"]["tools"]) == 1
    assert set(losses) == {"tool_choice", "parallel_tool_calls"}


@pytest.mark.parametrize(
    ("part", "block", "loss"),
    [
        (ImagePart(Media(data=PNG)), {"format": "png", "source": {"bytes": PNG}}, None),
        (
            ImagePart(Media(data="/9j/4AAQ")),
            {"format": "jpeg", "source": {"bytes": "/9j/4AAQ"}},
            None,
        ),
        (ImagePart(Media(media_type="image/bmp", data="Qk0=")), None, "image"),
        (ImagePart(Media(url="https://example.com/cat.png")), None, "image.url"),
        (ImagePart(Media(file_id="file-123")), None, "file_id"),
        (
            ImagePart(Media(media_type="image/png", data=PNG), detail="low"),
            {"format": "png", "source": {"bytes": PNG}},
            "openai.image_detail",
        ),
        (DocumentPart(Media(media_type="application/zip", data="UEsD")), None, "document"),
        (DocumentPart(Media(url="https://example.com/a.pdf")), None, "document.url"),
        (DocumentPart(Media(media_type="text/plain", data="//79")), None, "document"),
    ],
)
def test_media_converse_cannot_take(
    part: Any, block: dict[str, Any] | None, loss: str | None
) -> None:
    body, losses = encode(ask(TextPart("look"), part))
    content = body["messages"][0]["content"]
    if block is None:
        assert content == [{"text": "look"}]
    else:
        assert content[1] == {"image": block}
    assert losses == (() if loss is None else (loss,))


def test_document_names_are_made_valid_and_distinct() -> None:
    pdf = Media(media_type="application/pdf", data="JVBERi0=")
    request = ask(
        DocumentPart(pdf, title="Q3 results: final!.pdf"),
        DocumentPart(pdf, title="report.pdf"),
        DocumentPart(pdf, title="report"),
        DocumentPart(pdf),
        DocumentPart(Media(media_type="text/markdown", data="IyBh"), title="notes.md"),
    )
    body, _ = encode(request)
    names = [block["document"]["name"] for block in body["messages"][0]["content"]]
    assert names == ["Q3 results- final-", "report", "report (2)", "document", "notes"]
    assert body["messages"][0]["content"][4]["document"]["format"] == "md"
    FORMATS["bedrock_converse"].validate_request(body)


def test_system_messages_and_blank_text() -> None:
    request = Request(
        "m",
        (
            Message(Role.USER, (TextPart("hi"), TextPart("  "))),
            Message(Role.SYSTEM, (TextPart("Answer in French."),)),
            Message(Role.ASSISTANT, (TextPart(""), TextPart("Bonjour"))),
        ),
        system=(TextPart("Be brief."), TextPart("\n")),
        user="user-1",
    )
    body, losses = encode(request)
    assert body["system"] == [{"text": "Be brief."}, {"text": "Answer in French."}]
    assert body["messages"] == [
        {"role": "user", "content": [{"text": "hi"}]},
        {"role": "assistant", "content": [{"text": "Bonjour"}]},
    ]
    assert set(losses) == {"system_position", "user"}


def test_foreign_call_ids_are_made_valid_consistently() -> None:
    call_id = "functions.get_weather:0"
    request = Request(
        "m",
        (
            Message(Role.USER, (TextPart("hi"),)),
            Message(Role.ASSISTANT, (ToolCallPart(call_id, "get_weather", "not json"),)),
            Message(Role.USER, (ToolResultPart(call_id, (TextPart("sunny"),)),)),
        ),
        tools=(WEATHER,),
    )
    body, losses = encode(request)
    FORMATS["bedrock_converse"].validate_request(body)
    use = body["messages"][1]["content"][0]["toolUse"]
    result = body["messages"][2]["content"][0]["toolResult"]
    assert use["toolUseId"] == result["toolUseId"] == converse.tool_use_id(call_id)
    assert use["toolUseId"].startswith("functions_get_weather_0_")
    assert converse.tool_use_id("toolu_01") == "toolu_01"
    assert use["input"] == {} and losses == ("tool_arguments",)


def test_json_object_mode_is_a_loss() -> None:
    fmt = ResponseFormat(ResponseFormatKind.JSON_OBJECT)
    assert encode(ask(TextPart("hi"), response_format=fmt))[1] == ("response_format.json_object",)


def test_request_path_encodes_the_model_id() -> None:
    model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    assert converse.request_path(model) == (
        "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse"
    )
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/x"
    assert converse.request_path(arn, stream=True).endswith("%2Fx/converse-stream")


# -- answers --------------------------------------------------------------------------------------


def test_answer_fields_only_converse_has() -> None:
    body = samples.bedrock_converse_response()
    body["output"]["message"]["content"].insert(
        0, {"reasoningContent": {"redactedContent": "EmwKAhgB"}}
    )
    body["output"]["message"]["content"].append({"citationsContent": {"citations": []}})
    body["stopReason"] = "stop_sequence"
    body["additionalModelResponseFields"] = {"stop_sequence": "END"}
    decoded = converse.decode_response(body, model="claude", response_id="req-1")
    response = decoded.value
    assert decoded.loss_names == ("bedrock.citationsContent",)
    assert (response.id, response.model, response.stop_sequence) == ("req-1", "claude", "END")
    assert response.parts[0] == ReasoningPart(encrypted="EmwKAhgB", origin=Vendor.ANTHROPIC)


def test_answer_for_a_converse_client() -> None:
    foreign = ReasoningPart("thought", signature="CiQB", origin=Vendor.GEMINI)
    parts = (
        ReasoningPart(encrypted="EmwKAhgB", origin=Vendor.ANTHROPIC),
        foreign,
        TextPart("hi"),
        ImagePart(Media(media_type="image/png", data=PNG)),
    )
    encoded = converse.encode_response(
        Response("r", "m", parts, StopReason.END_TURN, Usage(10, 5, 4, 2, 3)), latency_ms=12
    )
    body = encoded.value
    assert encoded.loss_names == ("image",)
    assert body["output"]["message"]["content"] == [
        {"reasoningContent": {"redactedContent": "EmwKAhgB"}},
        {"reasoningContent": {"reasoningText": {"text": "thought", "signature": seal(foreign)}}},
        {"text": "hi"},
    ]
    assert body["usage"] == {
        "inputTokens": 4,
        "outputTokens": 5,
        "totalTokens": 15,
        "cacheReadInputTokens": 4,
        "cacheWriteInputTokens": 2,
    }
    assert body["metrics"] == {"latencyMs": 12}


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    [
        "ThrottlingException",
        "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
        "com.amazon.bedrock#ThrottlingException",
        "throttlingException",
    ],
)
def test_exception_names_in_every_spelling(spelling: str) -> None:
    assert converse.normalize_exception_name(spelling) == "ThrottlingException"
    error = converse.error_from_exception(spelling, "slow down")
    assert error == ErrorInfo(429, ErrorType.RATE_LIMIT, "slow down", code="ThrottlingException")


def test_exception_name_travels_in_header_or_body() -> None:
    body = {"message": "The model is not ready.", "__type": "ModelNotReadyException"}
    error = converse.decode_error(429, body)
    assert (error.type, error.code) == (ErrorType.OVERLOADED, "ModelNotReadyException")
    assert converse.exception_name(error) == "ModelNotReadyException"
    header = converse.decode_error(403, {"message": "no"}, exception="UnrecognizedClientException")
    assert header.type is ErrorType.AUTHENTICATION
    unknown = converse.decode_error(418, '{"Message": "teapot"}', exception="TeapotException")
    assert (unknown.status, unknown.type, unknown.message) == (
        418,
        ErrorType.INVALID_REQUEST,
        "teapot",
    )
    assert converse.exception_name(unknown) == "ValidationException"


@pytest.mark.parametrize("status", sorted(fake_bedrock.EXCEPTIONS))
def test_every_exception_the_fake_raises_is_known(status: int) -> None:
    name, message = fake_bedrock.EXCEPTIONS[status]
    error = converse.decode_error(status, {"message": message}, exception=name)
    assert converse.EXCEPTIONS[name][0] == status == error.status
    assert error.message == message


@pytest.mark.parametrize("error_type", list(ErrorType))
def test_every_error_has_an_exception_for_its_client(error_type: ErrorType) -> None:
    error = ErrorInfo(500, error_type, "x")
    name = converse.exception_name(error)
    assert name in converse.EXCEPTIONS
    assert converse.encode_error(error) == {"message": "x"}


# -- streams --------------------------------------------------------------------------------------


def feed_all(events: list[dict[str, Any]], **options: Any) -> list[Any]:
    decoder = ConverseStreamDecoder(**options)
    out = [e for event in events for e in decoder.feed(event)]
    return out + decoder.finish()


def test_stream_decoder_opens_text_and_reasoning_on_their_first_delta() -> None:
    events: list[dict[str, Any]] = [
        {"messageStart": {"role": "assistant", "p": "abc"}},
        {
            "contentBlockDelta": {
                "contentBlockIndex": 0,
                "delta": {"reasoningContent": {"text": "Hm"}},
            }
        },
        {
            "contentBlockDelta": {
                "contentBlockIndex": 0,
                "delta": {"reasoningContent": {"signature": "Eq"}},
            }
        },
        {"contentBlockStop": {"contentBlockIndex": 0}},
        {
            "contentBlockDelta": {
                "contentBlockIndex": 1,
                "delta": {"reasoningContent": {"redactedContent": "Em"}},
            }
        },
        {"contentBlockStop": {"contentBlockIndex": 1}},
        {"contentBlockDelta": {"contentBlockIndex": 2, "delta": {"text": "Hi"}}},
        {"contentBlockStop": {"contentBlockIndex": 2}},
        {"metadata": {"usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7}}},
        {"messageStop": {"stopReason": "max_tokens"}},
    ]
    assert feed_all(events, model="claude", response_id="req-1") == [
        MessageStart("req-1", "claude"),
        PartStart(0, ReasoningPart(origin=Vendor.ANTHROPIC)),
        ReasoningDelta(0, "Hm"),
        SignatureDelta(0, signature="Eq"),
        PartStop(0),
        PartStart(1, ReasoningPart(encrypted="Em", origin=Vendor.ANTHROPIC)),
        PartStop(1),
        PartStart(2, TextPart("")),
        TextDelta(2, "Hi"),
        PartStop(2),
        MessageDelta(usage=Usage(3, 4)),
        MessageDelta(stop_reason=StopReason.MAX_TOKENS),
        MessageStop(),
    ]


def test_stream_decoder_survives_a_sloppy_or_cut_upstream() -> None:
    decoder = ConverseStreamDecoder()
    start = {"toolUse": {"toolUseId": "t1", "name": "f"}}
    out = decoder.feed({"contentBlockStart": {"contentBlockIndex": 0, "start": start}})
    out += decoder.feed(
        {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"toolUse": {"input": '{"a"'}}}}
    )
    out += decoder.feed({"contentBlockStart": {"contentBlockIndex": 1, "start": {"image": {}}}})
    out += decoder.feed({"contentBlockDelta": {"contentBlockIndex": 1, "delta": {"image": {}}}})
    out += decoder.feed(
        {"contentBlockDelta": {"contentBlockIndex": 7, "delta": {"toolUse": {"input": "x"}}}}
    )
    out += decoder.feed({"somethingNew": {}})
    out += decoder.finish()
    assert out == [
        MessageStart("", ""),
        PartStart(0, ToolCallPart("t1", "f", "")),
        ToolArgsDelta(0, '{"a"'),
        PartStop(0),
        MessageStop(),
    ]
    assert {loss.name for loss in decoder.losses} == {
        "bedrock.contentBlockStart.image",
        "bedrock.toolUse",
        "bedrock.somethingNew",
    }
    assert decoder.finish() == []


def test_stream_exception_ends_the_stream() -> None:
    events: list[dict[str, Any]] = [
        {"messageStart": {"role": "assistant"}},
        {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "Hel"}}},
        {
            "modelStreamErrorException": {
                "message": "The model stream failed.",
                "originalStatusCode": 500,
            }
        },
        {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "lo"}}},
    ]
    out = feed_all(events)
    assert out[-2:] == [
        PartStop(0),
        StreamError(
            ErrorInfo(
                424, ErrorType.SERVER, "The model stream failed.", code="ModelStreamErrorException"
            )
        ),
    ]


def test_frames_round_trip_through_event_stream_framing() -> None:
    events: list[dict[str, Any]] = [
        {"messageStart": {"role": "assistant"}},
        {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "é"}}},
        {"throttlingException": {"message": "slow down"}},
    ]
    messages = decode_all(b"".join(frame_from_event(e) for e in events))
    assert [event_from_frame(m) for m in messages] == events
    assert messages[0].headers == {
        ":message-type": "event",
        ":event-type": "messageStart",
        ":content-type": "application/json",
    }
    assert messages[2].message_type == "exception"
    assert messages[2].exception_type == "throttlingException"
    error = EventStreamMessage(
        {":message-type": "error", ":error-code": "InternalFailure", ":error-message": "boom"}
    )
    assert event_from_frame(error) == {"InternalFailure": {"message": "boom"}}
    garbage = decode_all(encode_message({":message-type": "event", ":event-type": "x"}, b"[1]"))
    assert event_from_frame(garbage[0]) is None
    assert event_from_frame(EventStreamMessage({":message-type": "event"})) is None


def test_stream_encoder_seals_foreign_reasoning_and_skips_what_converse_cannot_say() -> None:
    foreign = ReasoningPart(origin=Vendor.OPENAI, id="rs_1")
    encoder = ConverseStreamEncoder(latency_ms=7)
    events: list[StreamEvent] = [
        MessageStart("r", "m", Usage(5, 0)),
        PartStart(0, foreign),
        ReasoningDelta(0, "Thinking."),
        SignatureDelta(0, encrypted="gAAAA"),
        PartStop(0),
        PartStart(1, ReasoningPart(encrypted="Em", origin=Vendor.ANTHROPIC)),
        PartStop(1),
        PartStart(2, ImagePart(Media(media_type="image/png", data=PNG))),
        PartStop(2),
        PartStart(3, TextPart("")),
        PartStop(3),
        PartStart(4, TextPart("Done.")),
        PartStop(4),
        MessageDelta(StopReason.END_TURN, usage=Usage(5, 9)),
    ]
    out = [e for event in events for e in encoder.feed(event)] + encoder.finish()
    sealed = seal(ReasoningPart(encrypted="gAAAA", origin=Vendor.OPENAI, id="rs_1"))

    def delta(index: int, value: dict[str, Any]) -> dict[str, Any]:
        return {"contentBlockDelta": {"contentBlockIndex": index, "delta": value}}

    assert out == [
        {"messageStart": {"role": "assistant"}},
        delta(0, {"reasoningContent": {"text": "Thinking."}}),
        delta(0, {"reasoningContent": {"signature": sealed}}),
        {"contentBlockStop": {"contentBlockIndex": 0}},
        delta(1, {"reasoningContent": {"redactedContent": "Em"}}),
        {"contentBlockStop": {"contentBlockIndex": 1}},
        delta(2, {"text": "Done."}),
        {"contentBlockStop": {"contentBlockIndex": 2}},
        {"messageStop": {"stopReason": "end_turn"}},
        {
            "metadata": {
                "usage": {
                    "inputTokens": 5,
                    "outputTokens": 9,
                    "totalTokens": 14,
                    "cacheReadInputTokens": 0,
                    "cacheWriteInputTokens": 0,
                },
                "metrics": {"latencyMs": 7},
            }
        },
    ]
    assert encoder.losses[0].name == "image"
    assert encoder.finish() == []

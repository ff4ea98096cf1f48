"""The same five scenarios, written once per surface with that surface's official SDK."""

from __future__ import annotations

import base64
import struct
import zlib
from typing import Any, Protocol

import anthropic
import openai
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as gt

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}


def tiny_png() -> bytes:
    """A valid 1x1 PNG, built here so that no binary file is needed."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


PNG_B64 = base64.b64encode(tiny_png()).decode()


class Surface(Protocol):
    def plain(self, model: str) -> str: ...

    def stream(self, model: str) -> tuple[str, int]:
        """The streamed text and the output tokens reported at its end."""
        ...

    def tool_round_trip(self, model: str) -> tuple[str, str]:
        """The name of the tool the model called, then the final answer's text."""
        ...

    def image(self, model: str) -> str: ...

    def error_status(self, model: str) -> int:
        """Call while the upstream fails with 400; the status the SDK raised, after checking
        that the SDK parsed the error body in its own format."""
        ...


class Chat:
    def __init__(self, url: str, key: str) -> None:
        self.client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)

    def plain(self, model: str) -> str:
        reply = self.client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Bonjour"}]
        )
        return reply.choices[0].message.content or ""

    def stream(self, model: str) -> tuple[str, int]:
        chunks = list(
            self.client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": "Bonjour"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        usage = chunks[-1].usage
        return text, usage.completion_tokens if usage else 0

    def tool_round_trip(self, model: str) -> tuple[str, str]:
        tools: Any = [
            {"type": "function", "function": {"name": "get_weather", "parameters": SCHEMA}}
        ]
        messages: list[Any] = [{"role": "user", "content": "Weather in Lyon?"}]
        first = self.client.chat.completions.create(model=model, messages=messages, tools=tools)
        calls = first.choices[0].message.tool_calls or []
        assert calls, first
        call = calls[0]
        messages.append(first.choices[0].message.model_dump(exclude_none=True))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": "12 C"})
        final = self.client.chat.completions.create(model=model, messages=messages, tools=tools)
        return call.function.name, final.choices[0].message.content or ""  # type: ignore[union-attr]

    def image(self, model: str) -> str:
        reply = self.client.chat.completions.create(
            model=model,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:image/png;base64,{PNG_B64}"},
                        },
                    ],
                }
            ],
        )
        return reply.choices[0].message.content or ""

    def error_status(self, model: str) -> int:
        try:
            self.client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "x"}]
            )
        except openai.APIStatusError as exc:
            assert isinstance(exc.body, dict) and exc.body.get("message"), exc.body
            return exc.status_code
        raise AssertionError("no error")


class Responses:
    def __init__(self, url: str, key: str) -> None:
        self.client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)

    def plain(self, model: str) -> str:
        return self.client.responses.create(model=model, input="Bonjour").output_text

    def stream(self, model: str) -> tuple[str, int]:
        with self.client.responses.stream(model=model, input="Bonjour") as stream:
            final = stream.get_final_response()
        return final.output_text, final.usage.output_tokens if final.usage else 0

    def tool_round_trip(self, model: str) -> tuple[str, str]:
        tools: Any = [
            {"type": "function", "name": "get_weather", "parameters": SCHEMA, "strict": False}
        ]
        first = self.client.responses.create(model=model, input="Weather in Lyon?", tools=tools)
        calls = [item for item in first.output if item.type == "function_call"]
        assert calls, first
        call = calls[0]
        final = self.client.responses.create(
            model=model,
            tools=tools,
            input=[
                {"role": "user", "content": "Weather in Lyon?"},
                {
                    "type": "function_call",
                    "call_id": call.call_id,
                    "name": call.name,
                    "arguments": call.arguments,
                },
                {"type": "function_call_output", "call_id": call.call_id, "output": "12 C"},
            ],
        )
        return call.name, final.output_text

    def image(self, model: str) -> str:
        return self.client.responses.create(
            model=model,
            input=[
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "What is this?"},
                        {
                            "type": "input_image",
                            "image_url": f"data:image/png;base64,{PNG_B64}",
                            "detail": "auto",
                        },
                    ],
                }
            ],
        ).output_text

    def error_status(self, model: str) -> int:
        try:
            self.client.responses.create(model=model, input="x")
        except openai.APIStatusError as exc:
            assert isinstance(exc.body, dict) and exc.body.get("message"), exc.body
            return exc.status_code
        raise AssertionError("no error")


class Messages:
    def __init__(self, url: str, key: str) -> None:
        self.client = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0)

    def _text(self, message: anthropic.types.Message) -> str:
        return "".join(block.text for block in message.content if block.type == "text")

    def plain(self, model: str) -> str:
        return self._text(
            self.client.messages.create(
                model=model, max_tokens=256, messages=[{"role": "user", "content": "Bonjour"}]
            )
        )

    def stream(self, model: str) -> tuple[str, int]:
        with self.client.messages.stream(
            model=model, max_tokens=256, messages=[{"role": "user", "content": "Bonjour"}]
        ) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        return text, final.usage.output_tokens

    def tool_round_trip(self, model: str) -> tuple[str, str]:
        tools: Any = [{"name": "get_weather", "input_schema": SCHEMA}]
        messages: list[Any] = [{"role": "user", "content": "Weather in Lyon?"}]
        first = self.client.messages.create(
            model=model, max_tokens=256, messages=messages, tools=tools
        )
        call = next(block for block in first.content if block.type == "tool_use")
        messages.append({"role": "assistant", "content": first.content})
        messages.append(
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "12 C"}],
            }
        )
        final = self.client.messages.create(
            model=model, max_tokens=256, messages=messages, tools=tools
        )
        return call.name, self._text(final)

    def image(self, model: str) -> str:
        return self._text(
            self.client.messages.create(
                model=model,
                max_tokens=256,
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/png",
                                    "data": PNG_B64,
                                },
                            },
                            {"type": "text", "text": "What is this?"},
                        ],
                    }
                ],
            )
        )

    def error_status(self, model: str) -> int:
        try:
            self.client.messages.create(
                model=model, max_tokens=16, messages=[{"role": "user", "content": "x"}]
            )
        except anthropic.APIStatusError as exc:
            assert isinstance(exc.body, dict) and exc.body.get("type") == "error", exc.body
            return exc.status_code
        raise AssertionError("no error")


class Gemini:
    def __init__(self, url: str, key: str) -> None:
        self.client = genai.Client(api_key=key, http_options=gt.HttpOptions(base_url=url))

    def plain(self, model: str) -> str:
        return self.client.models.generate_content(model=model, contents="Bonjour").text or ""

    def stream(self, model: str) -> tuple[str, int]:
        pieces = list(self.client.models.generate_content_stream(model=model, contents="Bonjour"))
        usage = pieces[-1].usage_metadata
        text = "".join(p.text or "" for p in pieces)
        return text, (usage.candidates_token_count or 0) if usage else 0

    def tool_round_trip(self, model: str) -> tuple[str, str]:
        tool = gt.Tool(
            function_declarations=[
                gt.FunctionDeclaration(name="get_weather", parameters_json_schema=SCHEMA)
            ]
        )
        config = gt.GenerateContentConfig(
            tools=[tool],
            automatic_function_calling=gt.AutomaticFunctionCallingConfig(disable=True),
        )
        question = gt.Content(role="user", parts=[gt.Part(text="Weather in Lyon?")])
        first = self.client.models.generate_content(model=model, contents=[question], config=config)
        calls = first.function_calls or []
        assert calls, first
        call = calls[0]
        candidate = first.candidates[0].content  # type: ignore[index]
        answer = gt.Content(
            role="user",
            parts=[
                gt.Part(
                    function_response=gt.FunctionResponse(
                        id=call.id, name=call.name, response={"result": "12 C"}
                    )
                )
            ],
        )
        final = self.client.models.generate_content(
            model=model,
            contents=[question, candidate, answer],
            config=config,  # type: ignore[list-item]
        )
        return call.name or "", final.text or ""

    def image(self, model: str) -> str:
        reply = self.client.models.generate_content(
            model=model,
            contents=[
                gt.Part(text="What is this?"),
                gt.Part(inline_data=gt.Blob(mime_type="image/png", data=tiny_png())),
            ],
        )
        return reply.text or ""

    def error_status(self, model: str) -> int:
        try:
            self.client.models.generate_content(model=model, contents="x")
        except genai_errors.APIError as exc:
            assert exc.message, exc
            return exc.code
        raise AssertionError("no error")


SURFACES = {"chat": Chat, "responses": Responses, "messages": Messages, "gemini": Gemini}

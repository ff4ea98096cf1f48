"""Realistic request and response bodies, each written by hand in its own format.

Every request tells the same story: a system prompt, a user asking about two cities with a
picture, an assistant that thinks, says something and calls a tool twice in parallel, the two
tool results, the assistant's answer, and a follow-up question. Tools, a tool choice, sampling
and reasoning settings come along. The bodies are independent of the encoders under test.
"""

from __future__ import annotations

from typing import Any

PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9aw"
    "AAAABJRU5ErkJggg=="
)
SYSTEM = "You are a weather assistant. Answer in one sentence."
QUESTION = "What is the weather in Paris and Lyon? Here is a map."
SAID = "Let me check both cities."
ANSWER = "Paris is sunny at 21°C and Lyon is cloudy at 18°C."
FOLLOW_UP = "And tomorrow?"
PARIS = {"city": "Paris"}
LYON = {"city": "Lyon"}
RESULT_PARIS = "sunny, 21°C"
RESULT_LYON = "cloudy, 18°C"
WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "City name"}},
    "required": ["city"],
}
TIME_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}
TOOLS = [
    ("get_weather", "Current weather for a city", WEATHER_SCHEMA),
    ("get_time", "Current time", TIME_SCHEMA),
]


def anthropic_request() -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "system": [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": QUESTION},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "thinking",
                        "thinking": "Two cities, two calls.",
                        "signature": "EqQBCgIYAhIMsig",
                    },
                    {"type": "text", "text": SAID},
                    {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": PARIS},
                    {"type": "tool_use", "id": "toolu_02", "name": "get_weather", "input": LYON},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01", "content": RESULT_PARIS},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_02",
                        "content": [{"type": "text", "text": RESULT_LYON}],
                    },
                ],
            },
            {"role": "assistant", "content": ANSWER},
            {"role": "user", "content": FOLLOW_UP},
        ],
        "tools": [
            {"name": name, "description": description, "input_schema": schema}
            for name, description, schema in TOOLS
        ],
        "tool_choice": {"type": "auto"},
        "temperature": 0.5,
        "stop_sequences": ["END"],
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "metadata": {"user_id": "user-42"},
        "stream": True,
    }


def openai_chat_request() -> dict[str, Any]:
    return {
        "model": "gpt-4.1",
        "messages": [
            {"role": "developer", "content": SYSTEM},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": QUESTION},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            },
            {
                "role": "assistant",
                "content": SAID,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Lyon"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": RESULT_PARIS},
            {"role": "tool", "tool_call_id": "call_2", "content": RESULT_LYON},
            {"role": "assistant", "content": ANSWER},
            {"role": "user", "content": FOLLOW_UP},
        ],
        "tools": [
            {
                "type": "function",
                "function": {"name": name, "description": description, "parameters": schema},
            }
            for name, description, schema in TOOLS
        ],
        "tool_choice": "auto",
        "max_completion_tokens": 4096,
        "temperature": 0.5,
        "stop": ["END"],
        "reasoning_effort": "low",
        "user": "user-42",
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def openai_responses_request() -> dict[str, Any]:
    return {
        "model": "gpt-5",
        "instructions": SYSTEM,
        "input": [
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": QUESTION},
                    {
                        "type": "input_image",
                        "image_url": f"data:image/png;base64,{PNG}",
                        "detail": "auto",
                    },
                ],
            },
            {
                "type": "reasoning",
                "id": "rs_01",
                "summary": [{"type": "summary_text", "text": "Two cities, two calls."}],
                "encrypted_content": "gAAAAABoEncrypted",
            },
            {
                "type": "message",
                "id": "msg_01",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": SAID, "annotations": []}],
            },
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": '{"city": "Paris"}',
            },
            {
                "type": "function_call",
                "call_id": "call_2",
                "name": "get_weather",
                "arguments": '{"city": "Lyon"}',
            },
            {"type": "function_call_output", "call_id": "call_1", "output": RESULT_PARIS},
            {"type": "function_call_output", "call_id": "call_2", "output": RESULT_LYON},
            {"role": "assistant", "content": ANSWER},
            {"role": "user", "content": FOLLOW_UP},
        ],
        "tools": [
            {
                "type": "function",
                "name": name,
                "description": description,
                "parameters": schema,
                "strict": False,
            }
            for name, description, schema in TOOLS
        ],
        "tool_choice": "auto",
        "max_output_tokens": 4096,
        "temperature": 0.5,
        "reasoning": {"effort": "low", "summary": "auto"},
        "include": ["reasoning.encrypted_content"],
        "store": False,
        "stream": True,
    }


def gemini_request() -> dict[str, Any]:
    return {
        "systemInstruction": {"parts": [{"text": SYSTEM}]},
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": QUESTION},
                    {"inlineData": {"mimeType": "image/png", "data": PNG}},
                ],
            },
            {
                "role": "model",
                "parts": [
                    {"text": "Two cities, two calls.", "thought": True},
                    {"text": SAID},
                    {
                        "functionCall": {"name": "get_weather", "args": PARIS},
                        "thoughtSignature": "CiQBVKhc7sig",
                    },
                    {"functionCall": {"name": "get_weather", "args": LYON}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {
                        "functionResponse": {
                            "name": "get_weather",
                            "response": {"output": RESULT_PARIS},
                        }
                    },
                    {
                        "functionResponse": {
                            "name": "get_weather",
                            "response": {"output": RESULT_LYON},
                        }
                    },
                ],
            },
            {"role": "model", "parts": [{"text": ANSWER}]},
            {"role": "user", "parts": [{"text": FOLLOW_UP}]},
        ],
        "tools": [
            {
                "functionDeclarations": [
                    {"name": name, "description": description, "parametersJsonSchema": schema}
                    for name, description, schema in TOOLS
                ]
            }
        ],
        "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
        "generationConfig": {
            "maxOutputTokens": 4096,
            "temperature": 0.5,
            "stopSequences": ["END"],
            "thinkingConfig": {"thinkingBudget": 2048, "includeThoughts": True},
        },
    }


def bedrock_converse_request() -> dict[str, Any]:
    return {
        "system": [{"text": SYSTEM}, {"cachePoint": {"type": "default"}}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": QUESTION},
                    {"image": {"format": "png", "source": {"bytes": PNG}}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {
                        "reasoningContent": {
                            "reasoningText": {
                                "text": "Two cities, two calls.",
                                "signature": "EqQBCgIYAhIMsig",
                            }
                        }
                    },
                    {"text": SAID},
                    {"toolUse": {"toolUseId": "tooluse_01", "name": "get_weather", "input": PARIS}},
                    {"toolUse": {"toolUseId": "tooluse_02", "name": "get_weather", "input": LYON}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "toolResult": {
                            "toolUseId": "tooluse_01",
                            "content": [{"text": RESULT_PARIS}],
                        }
                    },
                    {
                        "toolResult": {
                            "toolUseId": "tooluse_02",
                            "content": [{"text": RESULT_LYON}],
                            "status": "success",
                        }
                    },
                ],
            },
            {"role": "assistant", "content": [{"text": ANSWER}]},
            {"role": "user", "content": [{"text": FOLLOW_UP}]},
        ],
        "toolConfig": {
            "tools": [
                {
                    "toolSpec": {
                        "name": name,
                        "description": description,
                        "inputSchema": {"json": schema},
                    }
                }
                for name, description, schema in TOOLS
            ],
            "toolChoice": {"auto": {}},
        },
        "inferenceConfig": {"maxTokens": 4096, "temperature": 0.5, "stopSequences": ["END"]},
        "additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 2048}},
        "requestMetadata": {"user": "user-42"},
    }


REQUESTS = {
    "anthropic": anthropic_request,
    "openai_chat": openai_chat_request,
    "openai_responses": openai_responses_request,
    "gemini": gemini_request,
    "bedrock_converse": bedrock_converse_request,
}


# -- answers (non-streamed), with cache and reasoning token counts --------------------------------


def anthropic_response() -> dict[str, Any]:
    return {
        "id": "msg_01Aq9w938a90dw8q",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [
            {"type": "thinking", "thinking": "Paris first.", "signature": "EqQBsigA"},
            {"type": "text", "text": SAID},
            {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": PARIS},
            {"type": "tool_use", "id": "toolu_02", "name": "get_weather", "input": LYON},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 100,
            "cache_creation_input_tokens": 20,
            "cache_read_input_tokens": 880,
            "output_tokens": 150,
            "output_tokens_details": {"thinking_tokens": 60},
        },
    }


def openai_chat_response() -> dict[str, Any]:
    return {
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1741569952,
        "model": "gpt-4.1-2025-04-14",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": SAID,
                    "refusal": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        },
                        {
                            "id": "call_2",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Lyon"}'},
                        },
                    ],
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 1000,
            "completion_tokens": 150,
            "total_tokens": 1150,
            "prompt_tokens_details": {"cached_tokens": 880, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 60, "audio_tokens": 0},
        },
    }


def openai_responses_response() -> dict[str, Any]:
    return {
        "id": "resp_67ccd3a9da748190baa7f1570fe91ac6",
        "object": "response",
        "created_at": 1741476777,
        "status": "completed",
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "model": "gpt-5-2025-08-07",
        "output": [
            {
                "type": "reasoning",
                "id": "rs_01",
                "summary": [{"type": "summary_text", "text": "Paris first."}],
                "encrypted_content": "gAAAAABoEnc",
            },
            {
                "type": "message",
                "id": "msg_01",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": SAID, "annotations": []}],
            },
            {
                "type": "function_call",
                "id": "fc_01",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": '{"city":"Paris"}',
                "status": "completed",
            },
            {
                "type": "function_call",
                "id": "fc_02",
                "call_id": "call_2",
                "name": "get_weather",
                "arguments": '{"city":"Lyon"}',
                "status": "completed",
            },
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": 1000,
            "input_tokens_details": {"cached_tokens": 880, "cache_write_tokens": 20},
            "output_tokens": 150,
            "output_tokens_details": {"reasoning_tokens": 60},
            "total_tokens": 1150,
        },
    }


def gemini_response() -> dict[str, Any]:
    return {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "Paris first.", "thought": True},
                        {"text": SAID},
                        {
                            "functionCall": {"name": "get_weather", "args": PARIS},
                            "thoughtSignature": "CiQBVKhcsig",
                        },
                        {"functionCall": {"name": "get_weather", "args": LYON}},
                    ],
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 1000,
            "candidatesTokenCount": 90,
            "thoughtsTokenCount": 60,
            "cachedContentTokenCount": 880,
            "totalTokenCount": 1150,
        },
        "modelVersion": "gemini-2.5-pro",
        "responseId": "Rw47aM3KE9SZjMcP",
    }


def bedrock_converse_response() -> dict[str, Any]:
    return {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {
                        "reasoningContent": {
                            "reasoningText": {"text": "Paris first.", "signature": "EqQBsigA"}
                        }
                    },
                    {"text": SAID},
                    {"toolUse": {"toolUseId": "tooluse_01", "name": "get_weather", "input": PARIS}},
                    {"toolUse": {"toolUseId": "tooluse_02", "name": "get_weather", "input": LYON}},
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": {
            "inputTokens": 100,
            "outputTokens": 150,
            "totalTokens": 1150,
            "cacheReadInputTokens": 880,
            "cacheWriteInputTokens": 20,
        },
        "metrics": {"latencyMs": 1432},
    }


RESPONSES = {
    "anthropic": anthropic_response,
    "openai_chat": openai_chat_response,
    "openai_responses": openai_responses_response,
    "gemini": gemini_response,
    "bedrock_converse": bedrock_converse_response,
}

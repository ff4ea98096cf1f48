"""Pure wire-format codecs: bytes and dicts in, values out, no I/O.

Each chat format has a codec module, ``decode``/``encode`` functions for requests, responses and
errors, and a ``*_stream`` module with an incremental stream decoder and encoder:

- ``openai_chat`` / ``openai_chat_stream``: OpenAI Chat Completions (and compatible servers);
- ``openai_responses`` / ``openai_responses_stream``: OpenAI Responses (Codex);
- ``anthropic`` / ``anthropic_stream``: Anthropic Messages (Claude Code);
- ``gemini`` / ``gemini_stream``: Gemini ``generateContent`` / ``streamGenerateContent``.

They all go through ``passerelle.core.canonical``, never from one format straight to another.
``sse`` and ``aws_eventstream`` split upstream byte streams into events.
"""

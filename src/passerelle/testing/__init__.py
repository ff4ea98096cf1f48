"""Fake upstream servers that speak each provider's exact wire format, for tests, benchmarks and
the offline demo. Every answer they give is labelled fake; none of them ever calls a real provider.

* ``fake_openai``: OpenAI (chat completions, embeddings, models) and Azure OpenAI paths;
* ``fake_anthropic``: the Anthropic Messages API (plain, streamed, tools, thinking, count_tokens);
* ``fake_gemini``: the Gemini API, and Vertex AI's Gemini and Claude (``rawPredict``) endpoints;
* ``fake_bedrock``: the Bedrock runtime (InvokeModel, Converse, their event streams), SigV4-checked.

All share the ``/_fake/`` control API (faults, request log) of ``_fake_common``, and
``server.serve_in_thread`` serves any of them on a real socket, by app or by provider name.
"""

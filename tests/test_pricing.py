"""Contract of the price table and the integer cost arithmetic."""

from __future__ import annotations

import json
from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

from passerelle.config.schema import ProviderKind
from passerelle.providers.pricing import Price, PriceTable, TokenUsage, cost_micro_usd

# $2.50 in, $10 out, $1.25 cached, $3.125 cache write, $20 reasoning, per million tokens.
PRICE = Price(
    input=2_500_000,
    output=10_000_000,
    cached_input=1_250_000,
    cache_write=3_125_000,
    reasoning=20_000_000,
)
PLAIN = Price(input=2_500_000, output=10_000_000)

SHIPPED_KINDS = {"openai", "azure_openai", "anthropic", "bedrock", "vertex", "gemini", "mistral"}


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.load_default()


def document(models: object, **top: object) -> dict[str, object]:
    return {
        "version": "test",
        "currency": "USD",
        "unit": "micro_usd_per_million_tokens",
        "models": models,
        **top,
    }


def entry(**fields: object) -> dict[str, object]:
    return {"input": 1, "output": 2, "source": "https://example.com/pricing", **fields}


# --- arithmetic -------------------------------------------------------------------------------


def test_plain_input_and_output() -> None:
    usage = TokenUsage(input_tokens=1_000, output_tokens=500)
    # 1000 * 2.50 $/M + 500 * 10 $/M = 0.0025 + 0.005 = 0.0075 $ = 7500 µ$
    assert cost_micro_usd(usage, PLAIN) == 7_500


def test_zero_usage_costs_nothing() -> None:
    assert cost_micro_usd(TokenUsage(0, 0), PRICE) == 0


def test_rounds_half_up_once_on_the_sum() -> None:
    price = Price(input=1_500_000, output=1_500_000)
    # 1 token * 1.5 µ$ = 1.5 µ$ → 2 (half up, not truncated to 1).
    assert cost_micro_usd(TokenUsage(1, 0), price) == 2
    # Two components of 1.5 µ$ each: 3.0 µ$ in total. Rounding each first would give 4.
    assert cost_micro_usd(TokenUsage(1, 1), price) == 3
    # 2.5 µ$ → 3: half up, where round() would give 2.
    assert cost_micro_usd(TokenUsage(1, 0), Price(input=2_500_000, output=0)) == 3
    # Just under a half rounds down.
    assert cost_micro_usd(TokenUsage(1, 0), Price(input=499_999, output=0)) == 0
    assert cost_micro_usd(TokenUsage(1, 0), Price(input=500_000, output=0)) == 1


def test_large_counts_stay_exact() -> None:
    # Ten trillion tokens at a price with a non-terminating binary fraction: a float would
    # lose the last digits, integers do not.
    price = Price(input=1_234_567, output=7_654_321)
    usage = TokenUsage(input_tokens=10**13 + 7, output_tokens=3 * 10**12 + 11)
    scaled = (10**13 + 7) * 1_234_567 + (3 * 10**12 + 11) * 7_654_321
    expected = scaled // 1_000_000 + (1 if scaled % 1_000_000 >= 500_000 else 0)
    cost = cost_micro_usd(usage, price)
    assert cost == expected
    assert type(cost) is int


def test_cached_input_is_a_discounted_subset_of_input() -> None:
    usage = TokenUsage(input_tokens=1_000_000, output_tokens=0, cached_input_tokens=400_000)
    # 600k fresh * 2.50 + 400k cached * 1.25 = 1.50 + 0.50 = 2.00 $
    assert cost_micro_usd(usage, PRICE) == 2_000_000


def test_cache_writes_are_a_surcharged_subset_of_input() -> None:
    usage = TokenUsage(
        input_tokens=1_000_000,
        output_tokens=0,
        cached_input_tokens=200_000,
        cache_write_tokens=300_000,
    )
    # 500k * 2.50 + 200k * 1.25 + 300k * 3.125 = 1.25 + 0.25 + 0.9375 $
    assert cost_micro_usd(usage, PRICE) == 2_437_500


def test_reasoning_is_a_subset_of_output_at_its_own_rate() -> None:
    usage = TokenUsage(input_tokens=0, output_tokens=1_000_000, reasoning_tokens=250_000)
    # 750k * 10 + 250k * 20 = 7.50 + 5.00 $
    assert cost_micro_usd(usage, PRICE) == 12_500_000


def test_missing_special_rates_fall_back_to_input_and_output() -> None:
    usage = TokenUsage(
        input_tokens=1_000,
        output_tokens=1_000,
        cached_input_tokens=300,
        cache_write_tokens=200,
        reasoning_tokens=900,
    )
    assert cost_micro_usd(usage, PLAIN) == cost_micro_usd(TokenUsage(1_000, 1_000), PLAIN)


def test_subsets_larger_than_their_total_are_capped() -> None:
    usage = TokenUsage(
        input_tokens=100,
        output_tokens=100,
        cached_input_tokens=500,
        cache_write_tokens=500,
        reasoning_tokens=500,
    )
    # All 100 input tokens are cache hits, no room left for writes; all output is reasoning.
    expected_scaled = 100 * 1_250_000 + 100 * 20_000_000
    assert cost_micro_usd(usage, PRICE) == (expected_scaled + 500_000) // 1_000_000


def test_negative_token_counts_are_rejected() -> None:
    with pytest.raises(ValueError, match="output_tokens"):
        TokenUsage(input_tokens=1, output_tokens=-1)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"input": -1, "output": 0}, "input"),
        ({"input": 0, "output": 1.5}, "output"),
        ({"input": True, "output": 0}, "input"),
        ({"input": 0, "output": 0, "cached_input": -5}, "cached_input"),
        ({"input": 0, "output": 0, "source": 3}, "source"),
    ],
)
def test_price_rejects_non_integer_or_negative(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Price(**fields)  # type: ignore[arg-type]


token_counts = st.integers(min_value=0, max_value=10**12)
usages = st.builds(
    TokenUsage,
    input_tokens=token_counts,
    output_tokens=token_counts,
    cached_input_tokens=token_counts,
    cache_write_tokens=token_counts,
    reasoning_tokens=token_counts,
)
rates = st.integers(min_value=0, max_value=10**9)
prices = st.builds(
    Price,
    input=rates,
    output=rates,
    cached_input=st.none() | rates,
    cache_write=st.none() | rates,
    reasoning=st.none() | rates,
)
FIELDS = (
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
# A cache hit or write is one more input token; a reasoning token is one more output token.
# Growing a subset alone would re-label existing tokens, which may rightly cost less.
GROWS_WITH = {
    "input_tokens": ("input_tokens",),
    "output_tokens": ("output_tokens",),
    "cached_input_tokens": ("cached_input_tokens", "input_tokens"),
    "cache_write_tokens": ("cache_write_tokens", "input_tokens"),
    "reasoning_tokens": ("reasoning_tokens", "output_tokens"),
}


def _consistent(usage: TokenUsage) -> TokenUsage:
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    return TokenUsage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_input_tokens=cached,
        cache_write_tokens=min(usage.cache_write_tokens, usage.input_tokens - cached),
        reasoning_tokens=min(usage.reasoning_tokens, usage.output_tokens),
    )


@given(usage=usages, price=prices)
def test_cost_is_never_negative(usage: TokenUsage, price: Price) -> None:
    assert cost_micro_usd(usage, price) >= 0


@given(
    usage=usages.map(_consistent),
    price=prices,
    field=st.sampled_from(FIELDS),
    extra=st.integers(min_value=1, max_value=10**9),
)
def test_more_tokens_never_cost_less(
    usage: TokenUsage, price: Price, field: str, extra: int
) -> None:
    counts = {name: getattr(usage, name) for name in FIELDS}
    for name in GROWS_WITH[field]:
        counts[name] += extra
    assert cost_micro_usd(TokenUsage(**counts), price) >= cost_micro_usd(usage, price)


@given(usage=usages, price=prices)
def test_cost_is_exactly_the_rounded_rational_sum(usage: TokenUsage, price: Price) -> None:
    from fractions import Fraction

    consistent = _consistent(usage)
    fresh = consistent.input_tokens - consistent.cached_input_tokens - consistent.cache_write_tokens
    visible = consistent.output_tokens - consistent.reasoning_tokens
    exact = Fraction(
        fresh * price.input
        + consistent.cached_input_tokens
        * (price.input if price.cached_input is None else price.cached_input)
        + consistent.cache_write_tokens
        * (price.input if price.cache_write is None else price.cache_write)
        + visible * price.output
        + consistent.reasoning_tokens
        * (price.output if price.reasoning is None else price.reasoning),
        1_000_000,
    )
    cost = cost_micro_usd(usage, price)
    assert cost - Fraction(1, 2) <= exact < cost + Fraction(1, 2)


# --- the shipped table ------------------------------------------------------------------------


def test_shipped_table_loads_with_its_version(table: PriceTable) -> None:
    assert table.version == "2026-11-01"
    assert len(table) >= 100


def test_every_shipped_entry_validates_and_has_a_source() -> None:
    raw = json.loads(
        resources.files("passerelle.providers").joinpath("prices.json").read_text("utf-8")
    )
    assert raw["currency"] == "USD"
    assert raw["unit"] == "micro_usd_per_million_tokens"
    for key, fields in raw["models"].items():
        kind, _, model = key.partition("/")
        assert kind in SHIPPED_KINDS, key
        assert model and model == model.lower(), key
        assert set(fields) >= {"input", "output", "cached_input", "cache_write", "reasoning"}
        assert fields["source"].startswith("https://"), key
        price = Price(**fields)  # the dataclass re-validates every figure
        for name in ("input", "output", "cached_input", "cache_write", "reasoning"):
            value = getattr(price, name)
            assert value is None or (type(value) is int and value >= 0), (key, name)
        if price.cached_input is not None:
            assert price.cached_input <= price.input, key


def test_shipped_kinds_are_provider_kinds_or_planned_ones() -> None:
    # The table may price vendors before their provider module lands; it must not invent kinds.
    assert {kind.value for kind in ProviderKind} - {"openai_compatible"} <= SHIPPED_KINDS


@pytest.mark.parametrize(
    ("kind", "model"),
    [
        ("openai", "gpt-4o"),
        ("openai", "gpt-4o-mini"),
        ("openai", "gpt-4.1"),
        ("openai", "gpt-4.1-mini"),
        ("openai", "gpt-4.1-nano"),
        ("openai", "o3"),
        ("openai", "o4-mini"),
        ("openai", "gpt-5"),
        ("openai", "gpt-5-mini"),
        ("openai", "gpt-5-nano"),
        ("openai", "text-embedding-3-small"),
        ("openai", "text-embedding-3-large"),
        ("anthropic", "claude-opus-4-1-20250805"),
        ("anthropic", "claude-sonnet-4-5-20250929"),
        ("anthropic", "claude-haiku-4-5-20251001"),
        ("anthropic", "claude-3-5-haiku-20241022"),
        ("anthropic", "claude-3-5-sonnet-20241022"),
        ("gemini", "gemini-2.5-pro"),
        ("gemini", "gemini-2.5-flash"),
        ("gemini", "gemini-2.5-flash-lite"),
        ("mistral", "mistral-large-latest"),
        ("mistral", "mistral-medium-latest"),
        ("mistral", "mistral-small-latest"),
        ("mistral", "codestral-latest"),
        ("mistral", "mistral-embed"),
        ("bedrock", "anthropic.claude-sonnet-4-5-20250929-v1:0"),
        ("bedrock", "anthropic.claude-3-5-sonnet-20241022-v2:0"),
        ("vertex", "claude-sonnet-4-5@20250929"),
        ("vertex", "claude-3-5-sonnet-v2@20241022"),
        ("azure_openai", "gpt-4o"),
    ],
)
def test_mainstream_models_are_priced(table: PriceTable, kind: str, model: str) -> None:
    assert table.lookup(kind, model) is not None


def test_known_figures(table: PriceTable) -> None:
    gpt_4o = table.lookup("openai", "gpt-4o")
    assert gpt_4o is not None
    assert (gpt_4o.input, gpt_4o.cached_input, gpt_4o.output) == (2_500_000, 1_250_000, 10_000_000)
    sonnet = table.lookup("anthropic", "claude-sonnet-4-5")
    assert sonnet is not None
    assert (sonnet.input, sonnet.cached_input, sonnet.cache_write, sonnet.output) == (
        3_000_000,
        300_000,
        3_750_000,
        15_000_000,
    )


# --- lookup -----------------------------------------------------------------------------------


def small_table() -> PriceTable:
    return PriceTable(
        {
            "openai/gpt-4o": Price(input=2_500_000, output=10_000_000),
            "openai/gpt-4o-mini": Price(input=150_000, output=600_000),
            "openai/gpt-4o-2024-05-13": Price(input=5_000_000, output=15_000_000),
            "anthropic/claude-sonnet-4-5": Price(input=3_000_000, output=15_000_000),
            "mistral/mistral-large": Price(input=500_000, output=1_500_000),
            "mistral/mistral-large-2411": Price(input=2_000_000, output=6_000_000),
            "bedrock/anthropic.claude-sonnet-4-5": Price(input=3_000_000, output=15_000_000),
            "vertex/claude-3-5-sonnet": Price(input=3_000_000, output=15_000_000),
            "gemini/gemini-2.0-flash": Price(input=100_000, output=400_000),
        },
        version="test",
    )


@pytest.mark.parametrize(
    ("kind", "model", "expected_key"),
    [
        ("openai", "gpt-4o", "openai/gpt-4o"),
        ("openai", "gpt-4o-2024-08-06", "openai/gpt-4o"),
        ("openai", "gpt-4o-mini-2024-07-18", "openai/gpt-4o-mini"),
        ("openai", "gpt-4o-2024-05-13", "openai/gpt-4o-2024-05-13"),
        ("openai", "GPT-4o", "openai/gpt-4o"),
        ("anthropic", "claude-sonnet-4-5-20250929", "anthropic/claude-sonnet-4-5"),
        ("anthropic", "claude-sonnet-4-5-latest", "anthropic/claude-sonnet-4-5"),
        ("mistral", "mistral-large-latest", "mistral/mistral-large"),
        ("mistral", "mistral-large-2512", "mistral/mistral-large"),
        ("mistral", "mistral-large-2411", "mistral/mistral-large-2411"),
        (
            "bedrock",
            "anthropic.claude-sonnet-4-5-20250929-v1:0",
            "bedrock/anthropic.claude-sonnet-4-5",
        ),
        (
            "bedrock",
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "bedrock/anthropic.claude-sonnet-4-5",
        ),
        (
            "bedrock",
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "bedrock/anthropic.claude-sonnet-4-5",
        ),
        ("vertex", "claude-3-5-sonnet-v2@20241022", "vertex/claude-3-5-sonnet"),
        ("gemini", "gemini-2.0-flash-001", "gemini/gemini-2.0-flash"),
    ],
)
def test_lookup_strips_version_suffixes(kind: str, model: str, expected_key: str) -> None:
    prices = small_table()
    assert prices.lookup(kind, model) is prices.entries[expected_key]


@pytest.mark.parametrize(
    ("kind", "model"),
    [
        ("openai", "gpt-4o-audio-preview"),  # a different model, not a snapshot of gpt-4o
        ("openai", "gpt-4o-mini-tts"),
        ("openai", "ft:gpt-4o-mini-2024-07-18:acme::abc123"),  # fine-tunes bill differently
        ("openai", "claude-sonnet-4-5"),  # right model, wrong provider
        ("anthropic", "claude-opus-4-5"),
        ("gemini", "gemini-2.0-flash-lite"),
        ("nonexistent", "gpt-4o"),
        ("openai", ""),
    ],
)
def test_unknown_models_have_no_price(kind: str, model: str) -> None:
    assert small_table().lookup(kind, model) is None


def test_azure_falls_back_to_openai_prices() -> None:
    prices = small_table()
    assert prices.lookup("azure_openai", "gpt-4o-2024-11-20") is prices.entries["openai/gpt-4o"]


def test_azure_entry_wins_over_the_openai_fallback() -> None:
    azure = Price(input=2_750_000, output=11_000_000)
    prices = small_table().with_overrides({"azure_openai/gpt-4o": azure})
    assert prices.lookup("azure_openai", "gpt-4o-2024-08-06") is azure
    assert prices.lookup("openai", "gpt-4o") is not azure


def test_openai_compatible_servers_have_no_price_unless_overridden() -> None:
    prices = small_table()
    assert prices.lookup("openai_compatible", "gpt-4o") is None
    assert prices.lookup("openai_compatible", "llama3.1:8b") is None
    own = Price(input=0, output=0)
    priced = prices.with_overrides({"openai_compatible/llama3.1:8b": own})
    assert priced.lookup("openai_compatible", "llama3.1:8b") is own


def test_overrides_win_and_leave_the_original_untouched(table: PriceTable) -> None:
    negotiated = Price(input=1, output=2)
    overridden = table.with_overrides({"openai/gpt-4o": negotiated, "openai/in-house": negotiated})
    assert overridden.lookup("openai", "gpt-4o") is negotiated
    assert overridden.lookup("openai", "gpt-4o-2024-08-06") is negotiated
    assert overridden.lookup("openai", "in-house") is negotiated
    assert overridden.version == table.version
    assert table.lookup("openai", "gpt-4o") != negotiated
    assert table.lookup("openai", "in-house") is None


@pytest.mark.parametrize("key", ["gpt-4o", "/gpt-4o", "openai/", " openai/gpt-4o"])
def test_override_keys_must_name_a_provider_kind_and_a_model(key: str) -> None:
    with pytest.raises(ValueError, match="provider kind"):
        small_table().with_overrides({key: Price(input=0, output=0)})


def test_keys_differing_only_in_case_are_rejected() -> None:
    price = Price(input=0, output=0)
    with pytest.raises(ValueError, match="twice"):
        PriceTable({"openai/GPT-4o": price, "openai/gpt-4o": price}, version="x")


# --- loading and validation -------------------------------------------------------------------


def test_from_json_accepts_a_minimal_table() -> None:
    loaded = PriceTable.from_json(json.dumps(document({"openai/x": entry(cached_input=None)})))
    assert loaded.version == "test"
    assert loaded.lookup("openai", "x") == Price(
        input=1, output=2, source="https://example.com/pricing"
    )


@pytest.mark.parametrize(
    ("models", "message"),
    [
        ({"openai/x": entry(input=-1)}, r"'openai/x'.*input"),
        ({"openai/x": entry(output=2.5)}, r"'openai/x'.*output"),
        ({"openai/x": entry(input="1")}, r"'openai/x'.*input"),
        ({"openai/x": entry(cache_write=True)}, r"'openai/x'.*cache_write"),
        ({"openai/x": entry(discount=5)}, r"'openai/x'.*unknown fields \['discount'\]"),
        ({"openai/x": {"input": 1, "output": 2}}, r"'openai/x'.*missing 'source'"),
        ({"openai/x": entry(source="http://insecure")}, r"'openai/x'.*https"),
        ({"openai/x": {"output": 2, "source": "https://e"}}, r"'openai/x'.*missing 'input'"),
        ({"openai/x": [1, 2]}, r"'openai/x' must be an object"),
        ({"no-slash": entry()}, r"'no-slash'"),
    ],
)
def test_invalid_entries_name_their_key(models: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PriceTable.from_document(document(models))


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (document({}, extra=1), "unknown fields"),
        (document({}, currency="EUR"), "currency"),
        (document({}, unit="usd_per_token"), "unit"),
        (document({}, version=""), "version"),
        (document([]), "models"),
        ([], "object"),
    ],
)
def test_invalid_table_headers_are_rejected(doc: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PriceTable.from_document(doc)


def test_duplicate_json_keys_are_rejected() -> None:
    text = (
        '{"version": "t", "currency": "USD", "unit": "micro_usd_per_million_tokens", '
        '"models": {"openai/x": {"input": 1, "output": 1, "source": "https://e"}, '
        '"openai/x": {"input": 2, "output": 2, "source": "https://e"}}}'
    )
    with pytest.raises(ValueError, match="'openai/x' appears twice"):
        PriceTable.from_json(text)


def test_malformed_json_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        PriceTable.from_json("{")

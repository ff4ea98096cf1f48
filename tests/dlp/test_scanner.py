"""The scanner's mechanics: offsets in characters, overlap resolution, threads, failing closed."""

from __future__ import annotations

import itertools
import random
import threading

import pytest

from passerelle.dlp import Category, DlpSettings, Finding, ScanError, Scanner
from passerelle.dlp.rules import Rule, Trigger
from tests.dlp._samples import TOKENS
from tests.dlp.conftest import rules_found


def literal_rule(rule_id: str, word: str, priority: int, **extra: object) -> Rule:
    return Rule(
        id=rule_id,
        category=Category.SECRET,
        triggers=(Trigger(word, before=len(word) + 1, after=1),),
        pattern=word,
        priority=priority,
        **extra,  # type: ignore[arg-type]
    )


def test_spans_are_character_offsets_in_accented_text(scanner: Scanner) -> None:
    token = TOKENS["github_pat"](random.Random(5))
    prefix = "Éléphant, château, crème brûlée, œuvre, naïve — 日本語 😀 "
    text = prefix + token + " fin, réessayé"
    (finding,) = scanner.scan(text).findings
    assert (finding.start, finding.end) == (len(prefix), len(prefix) + len(token))
    assert finding.extract(text) == token


def test_spans_after_decomposed_accents_and_astral_characters(scanner: Scanner) -> None:
    email = "claire.faure@solvel.fr"
    text = "e\u0301te\u0301 " * 50 + "🎉" * 30 + f" {email} " + "ü" * 10
    assert rules_found(scanner, text) == [("email", email)]


def test_lone_surrogates_are_scanned(scanner: Scanner) -> None:
    email = "luc.petit@ventas.fr"
    text = "broken \ud800 json " + email
    assert rules_found(scanner, text) == [("email", email)]


def test_empty_and_clean_text(scanner: Scanner) -> None:
    assert scanner.scan("").clean
    result = scanner.scan("Rien à signaler ici, juste du texte. " * 100)
    assert result.clean and result.findings == () and not result.injection


def test_overlap_resolution_rule() -> None:
    rules = [
        literal_rule("low_long", "abcdefgh", priority=10),
        literal_rule("high_short", "cdef", priority=50),
        literal_rule("same_a", "xyz12", priority=20),
        literal_rule("same_b", "z123", priority=20),
        literal_rule("tie_b", "qqq", priority=30),
        literal_rule("tie_a", "qqq", priority=30),
    ]
    scanner = Scanner(rules=rules)
    # The higher priority wins even when shorter.
    assert rules_found(scanner, "abcdefgh") == [("high_short", "cdef")]
    # Same priority: the longer span wins.
    assert rules_found(scanner, "xyz123") == [("same_a", "xyz12")]
    # Same priority and span: the rule id decides, alphabetically.
    assert rules_found(scanner, "qqq") == [("tie_a", "qqq")]
    # The losers' classes still count.
    assert scanner.scan("abcdefgh").data_classes == {"restricted"}


def test_findings_never_overlap_and_are_sorted(scanner: Scanner) -> None:
    rng = random.Random(7)
    token = TOKENS["openai_api_key"](rng)
    text = f'OPENAI_API_KEY="{token}"\nexport GITHUB_TOKEN={TOKENS["github_pat"](rng)}\n' * 3
    findings = scanner.scan(text).findings
    assert [f.rule for f in findings] == ["openai_api_key", "github_pat"] * 3
    for before, after in itertools.pairwise(findings):
        assert before.end <= after.start


def test_results_are_deterministic(scanner: Scanner) -> None:
    rng = random.Random(9)
    text = " ".join(generate(rng) for generate in TOKENS.values())
    first = scanner.scan(text)
    assert all(scanner.scan(text) == first for _ in range(3))
    assert len(first.findings) >= len(TOKENS) - 2


def test_finding_never_shows_the_value(scanner: Scanner) -> None:
    token = TOKENS["stripe_secret_key"](random.Random(11))
    result = scanner.scan(f"key {token}")
    assert token not in repr(result) and token not in str(result.findings[0])
    assert result.rules() == {"stripe_secret_key": 1}


def test_shared_across_threads(scanner: Scanner) -> None:
    rng = random.Random(13)
    texts = [f"n{i} {TOKENS['npm_token'](rng)} x{i}@solvel.fr" for i in range(40)]
    expected = [scanner.scan(t) for t in texts]
    errors: list[BaseException] = []
    results: dict[int, object] = {}

    def work(offset: int) -> None:
        try:
            for _ in range(20):
                for index in range(offset, len(texts), 4):
                    results[index] = scanner.scan(texts[index])
                    assert results[index] == expected[index]
        except BaseException as exc:  # collected and re-raised by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors


def test_fails_closed_when_a_check_breaks() -> None:
    def broken(text: str, start: int, end: int) -> tuple[int, int] | None:
        raise ValueError(f"cannot parse {text[start:end]!r}")

    scanner = Scanner(rules=[literal_rule("broken", "hunter2", priority=10, check=broken)])
    assert scanner.scan("nothing here").clean
    with pytest.raises(ScanError) as caught:
        scanner.scan("the password is hunter2")
    assert "hunter2" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_rejects_what_it_cannot_scan(scanner: Scanner) -> None:
    with pytest.raises(ScanError):
        scanner.scan(b"bytes")  # type: ignore[arg-type]


def test_rules_that_do_not_compile_are_named() -> None:
    with pytest.raises(ScanError, match="bad_trigger"):
        Scanner(rules=[Rule("bad_trigger", Category.SECRET, (Trigger("(", 1, 1),), "x", 1)])
    with pytest.raises(ScanError, match="bad_pattern"):
        Scanner(rules=[Rule("bad_pattern", Category.SECRET, (Trigger("x", 1, 1),), "(", 1)])
    with pytest.raises(ScanError, match="no DLP rule"):
        Scanner(rules=[])


def test_settings_choose_classes_and_rules() -> None:
    settings = DlpSettings(
        secret_class="secret", personal_class="pii", disabled_rules=frozenset({"ipv4"})
    )
    scanner = Scanner(settings)
    token = TOKENS["npm_token"](random.Random(2))
    result = scanner.scan(f"{token} anne.roux@solvel.fr 81.57.203.14")
    assert [(f.rule, f.data_class) for f in result.findings] == [
        ("npm_token", "secret"),
        ("email", "pii"),
    ]
    assert "ipv4" not in {rule.id for rule in scanner.rules}


def test_large_input(scanner: Scanner) -> None:
    token = TOKENS["gitlab_pat"](random.Random(4))
    text = ("lorem ipsum dolor sit amet, " * 40_000) + token + (" 1234567890" * 50_000)
    result = scanner.scan(text)
    assert [(f.rule, f.extract(text)) for f in result.findings] == [("gitlab_pat", token)]


def test_finding_is_a_plain_value() -> None:
    finding = Finding("email", Category.PERSONAL, "confidential", 3, 8)
    assert finding.extract("ab hello world") == "hello"
    assert "hello" not in repr(finding)

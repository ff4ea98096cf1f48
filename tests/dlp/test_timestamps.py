"""Log timestamps are not numbers: their digits never reach the numeric rules, while a real
number next to one is still found."""

from __future__ import annotations

from passerelle.dlp import Scanner


def test_timestamps_are_skipped_but_numbers_beside_them_are_found(scanner: Scanner) -> None:
    log = "\n".join(
        f"2026-11-{day:02d} 17:04:{day:02d} INFO worker started" for day in range(1, 29)
    )
    assert scanner.scan(log).findings == ()
    card = "4970 1000 0000 0063"
    mixed = f"2026-11-29 17:04:20 ERROR payment failed for card {card}\n"
    found = [f.rule for f in scanner.scan(mixed).findings]
    assert found == ["credit_card"]
    phone = "2026-11-29 17:04:20 callback requested on 06 71 28 93 45 by the customer"
    assert [f.rule for f in scanner.scan(phone).findings] == ["phone_fr"]

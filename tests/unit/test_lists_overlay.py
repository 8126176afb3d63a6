"""Maintained lists in the rule language, snoozes in scoring, evidence values: unit level."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from workbench.errors import RuleError, RuleSetError
from workbench.rules import compile_expression, parse_rules
from workbench.rules.lists import CATALOGUE, clean_reason, clean_value, kind_of, read_list_files
from workbench.rules.values import LISTS_KEY
from workbench.schema import coerce
from workbench.scoring.detector import Detector
from workbench.scoring.evaluate import evaluate
from workbench.scoring.evidence import json_values
from workbench.scoring.overlay import Overlay
from workbench.scoring.whatif import what_if

FIELDS = {"card_id": ("string", False), "country": ("string", True), "amount": ("number", False)}


def expr(text: str, lists=None):
    return compile_expression(text, fields=FIELDS, lists=lists or {})


def test_in_list_reads_the_lookup_of_each_call():
    e = expr('card_id in list("blocked_cards")')
    cards = pd.Series(["a", "b", "c"], dtype="str")
    assert e({"card_id": cards}, 3)[0].tolist() == [False, False, False]
    got = e({"card_id": cards, LISTS_KEY: {"blocked_cards": np.array(["b", "c"], object)}}, 3)
    assert got[0].tolist() == [False, True, True]
    assert e.lists == frozenset({"blocked_cards"})


def test_not_in_list_keeps_missing_values_unknown():
    e = expr('country not in list("blocked_countries")')
    env = {
        "country": pd.Series(["FR", None, "DE"], dtype="str"),
        LISTS_KEY: {"blocked_countries": np.array(["FR"], object)},
    }
    assert e(env, 3)[0].tolist() == [False, False, True]
    e = expr('not (country in list("blocked_countries"))')
    assert e(env, 3)[0].tolist() == [False, False, True]


def test_an_inline_list_of_the_same_name_adds_its_items():
    e = expr('card_id in list("vip")', lists={"vip": ("a",)})
    env = {"card_id": pd.Series(["a", "b"], dtype="str"), LISTS_KEY: {"vip": np.array(["b"])}}
    assert e(env, 2)[0].tolist() == [True, True]


@pytest.mark.parametrize(
    ("text", "message", "at", "suggestion"),
    [
        ('card_id in list("blocked_card")', "unknown list 'blocked_card'", "list", "blocked_cards"),
        ("card_id in list(blocked_cards)", "takes the name of a maintained list", "blocked", None),
        ('amount in list("blocked_cards")', "tests strings, got a number", "in", None),
        ('card_id in list("blocked_cards"', "expected ')'", None, None),
    ],
)
def test_list_errors_are_located_with_a_suggestion(text, message, at, suggestion):
    with pytest.raises(RuleError) as info:
        expr(text)
    assert message in info.value.message
    assert info.value.col == (text.index(at) + 1 if at else len(text) + 1)
    assert info.value.suggestion == suggestion


def test_a_rule_file_with_an_unknown_list_names_file_line_and_rule():
    text = 'rules:\n  - id: r1\n    when: card_id in list("blokced_cards")\n    score: 10\n'
    with pytest.raises((RuleError, RuleSetError)) as info:
        parse_rules({"rules/a.yaml": text})
    error = info.value
    assert (error.file, error.line, error.col, error.rule_id) == ("rules/a.yaml", 3, 22, "r1")
    assert error.suggestion == "blocked_cards"


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("card", "<script>alert(1)</script>"),
        ("card", "a b"),
        ("card", "x" * 129),
        ("card", "a\nb"),
        ("card", '"quoted"'),
        ("terminal", ""),
        ("merchant", "crypto;drop"),
        ("country", "FRA"),
        ("country", "1A"),
        ("planet", "earth"),
    ],
)
def test_hostile_values_are_refused(kind, value):
    with pytest.raises(ValueError):
        clean_value(kind, value)


def test_values_and_reasons_are_normalised_and_bounded():
    assert clean_value("card", "  card-1:a.b_c ") == "card-1:a.b_c"
    assert clean_value("country", "de") == "DE"
    assert clean_reason("a\x00b\nc") == "a b c"
    with pytest.raises(ValueError):
        clean_reason("x" * 201)
    assert {kind_of(name) for name in CATALOGUE} == {"card", "merchant", "terminal", "country"}
    with pytest.raises(ValueError, match="did you mean 'allowed_cards'"):
        kind_of("allowed_card")


def test_list_files(tmp_path):
    (tmp_path / "allowed_cards.txt").write_text("c1\n\n# note\nc2  # trailing\n<x>\n")
    (tmp_path / "whatever.txt").write_text("c3\n")
    found, problems = read_list_files(tmp_path)
    assert found == {"allowed_cards": ["c1", "c2"]}
    assert len(problems) == 2 and problems[0].endswith(
        ":5: a card value holds letters, digits and . _ : - only (got '<x>')"
    )
    assert "unknown list 'whatever'" in problems[1]
    assert read_list_files(tmp_path / "missing") == ({}, [])


def batch(n: int = 6) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ts": pd.date_range("2026-01-01", periods=n, freq="1min", tz="UTC"),
            "card_id": pd.Series(["c1", "c2"] * (n // 2), dtype="str"),
            "terminal_id": pd.Series(["t1"] * n, dtype="str"),
            "merchant_category": pd.Series(["crypto"] * n, dtype="str"),
        }
    )


def test_a_snooze_clears_its_rule_for_its_entity_until_the_event_time():
    snoozes = pd.DataFrame(
        {
            "rule_id": ["r0", "r0", "r1"],
            "kind": ["card", "card", "merchant"],
            "value": ["c1", "c1", "crypto"],
            "until": pd.to_datetime(
                ["2026-01-01 00:01:00", "2026-01-01 00:03:00", "2026-01-01 00:00:00"], utc=True
            ),
        }
    )
    overlay = Overlay.build({}, snoozes)
    hits = np.ones((6, 2), dtype=bool)
    cleared = overlay.snooze_mask(batch(), np.array(["r0", "r1"], object), hits)
    # c1 at 00:00 and 00:02 (the latest of its two snoozes wins: until 00:03); c1 at 00:04 is
    # after it; r1's snooze ended before the first row.
    assert hits[:, 0].tolist() == [False, True, False, True, True, True]
    assert hits[:, 1].all() and cleared == 2


def test_overlay_versions_follow_content_not_order():
    a = Overlay.build({"blocked_cards": ["b", "a", "a"]})
    b = Overlay.build({"blocked_cards": ["a", "b"]})
    c = Overlay.build({"blocked_cards": ["a"]})
    assert a.version == b.version != c.version
    assert a.lists["blocked_cards"].to_pylist() == ["a", "b"]


def test_evidence_values_are_valid_json_whatever_the_text():
    hostile = pd.Series(['a"b', "back\\slash", "<script>", None, "é"], dtype="str")
    text = json_values(hostile, np.arange(5)).to_pylist()
    assert [json.loads(t) for t in text] == ['a"b', "back\\slash", "<script>", None, "é"]
    numbers = json_values(np.array([1.5, np.nan, np.inf, 3.0]), np.arange(4)).to_pylist()
    assert [json.loads(t) for t in numbers] == [1.5, None, None, 3]
    flags = json_values(np.array([True, False]), np.arange(2)).to_pylist()
    assert [json.loads(t) for t in flags] == [True, False]
    times = np.array(["2026-01-01T00:00:01.5"], dtype="datetime64[ns]")
    assert json.loads(json_values(times, np.arange(1)).to_pylist()[0]).startswith(
        "2026-01-01T00:00:01.5"
    )


LISTED = """
bands: {medium: 40, high: 70}
rules:
  - id: blocked
    when: card_id in list("blocked_cards")
    score: 80
  - id: big
    when: amount > 1000
    score: 10
"""


def history(n: int = 10) -> pd.DataFrame:
    """One transaction a minute from 00:00, cards c1, c2 alternating (c1 at even minutes)."""
    rows, dead = coerce(
        pd.DataFrame(
            {
                "tx_id": [f"t{i}" for i in range(n)],
                "ts": pd.date_range("2026-01-01", periods=n, freq="1min", tz="UTC"),
                "card_id": ["c1", "c2"] * (n // 2),
                "amount": [10.0] * n,
            }
        )
    )
    assert dead.empty
    return rows


def c1_snoozed(until: str) -> Overlay:
    snoozes = pd.DataFrame(
        {
            "rule_id": ["blocked"],
            "kind": ["card"],
            "value": ["c1"],
            "until": pd.to_datetime([until], utc=True),
        }
    )
    return Overlay.build({"blocked_cards": ["c1"]}, snoozes)


def test_evaluate_applies_the_list_and_the_snooze_by_event_time_like_the_stream():
    rules = parse_rules({"r.yaml": LISTED})
    rows = history()
    overlay = c1_snoozed("2026-01-01 00:04:30")
    done = evaluate(rules, rows, overlay=overlay)
    # c1 at 00:00, 00:02, 00:04 is inside the snooze; at 00:06, 00:08 after it.
    assert done.rule_ids == ["blocked", "big"]
    assert np.flatnonzero(done.matrix[:, 0]).tolist() == [6, 8]
    assert done.snoozed == 3 and not done.matrix[:, 1].any()
    assert done.scores["band"].tolist() == ["Low"] * 6 + ["High", "Low", "High", "Low"]
    assert done.hit_frame()["blocked"].sum() == 2
    # The stream's detector, fed the same rows and overlay, gives the same result.
    scored, hits, _ = Detector(rules, overlay=overlay).score_frame(rows)
    assert scored["risk_score"].tolist() == done.scores["risk_score"].tolist()
    assert hits["row"].tolist() == [6, 8] and hits.equals(done.hits)
    # No overlay: no maintained list has entries, nothing is snoozed.
    assert not evaluate(rules, rows).matrix.any()


def test_what_if_shows_the_list_effect_and_the_snooze_window():
    before = parse_rules({"r.yaml": LISTED.replace("score: 80", "score: 20")})
    after = parse_rules({"r.yaml": LISTED})
    rows = history()
    result = what_if(before, after, rows, overlay=c1_snoozed("2026-01-01 00:04:30"))
    assert result.rules.loc["blocked", ["hits_before", "hits_after"]].tolist() == [2, 2]
    assert result.changed["tx_id"].tolist() == ["t6", "t8"]
    assert result.changed["band_after"].tolist() == ["High", "High"]
    # A snooze whose end is past every row hides them all; without an overlay, nothing hits.
    hidden = what_if(before, after, rows, overlay=c1_snoozed("2026-01-02"))
    assert hidden.rules.loc["blocked", "hits_after"] == 0 and hidden.changed_total == 0
    bare = what_if(before, after, rows)
    assert bare.rules.loc["blocked", "hits_after"] == 0

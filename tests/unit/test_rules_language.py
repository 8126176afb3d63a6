"""The rule file's richer window language: located errors (with suggestions) for lagged,
conditioned, percentile and time-since-fraud features, rule ids in any case (unique ignoring
case), and rule groups."""

from __future__ import annotations

import textwrap

import pandas as pd
import pytest

from workbench.errors import RuleError, RuleSetError
from workbench.rules import parse_rules
from workbench.rules.conditions import RowCondition, compile_condition

RULE = "rules:\n  - {id: r, when: amount > 0, score: 1}\n"


def one_error(text: str) -> RuleError:
    with pytest.raises(RuleError) as info:
        parse_rules({"rules/x.yaml": text})
    assert not isinstance(info.value, RuleSetError), str(info.value)
    return info.value


def feature(decl: str) -> str:
    return f"features:\n  f: {decl}\n" + RULE


@pytest.mark.parametrize(
    ("decl", "message", "at", "suggestion"),
    [
        # lagged windows
        ("{agg: mean, of: amount, by: card_id, window: 1h, ending: 1x}",
         "feature 'f': not a duration: '1x'", "1x}", None),
        ("{agg: mean, of: amount, by: card_id, window: 60d, ending: 31d}",
         "feature 'f': ending must be above 0 and the window plus its ending at most 90d", "31d",
         None),
        ("{agg: is_new, of: device_id, by: card_id, window: 1h, ending: 1h}",
         "feature 'f': agg is_new takes no ending", "1h}", None),
        ("{agg: speed_kmh, by: card_id, ending: 1h}",
         "feature 'f': agg speed_kmh takes no ending", "1h}", None),
        ("{agg: mean, of: amount, by: card_id, window: 1h, endng: 1h}",
         "unknown key 'endng' in feature 'f'", "1h}", "ending"),
        ("{agg: fraud_count, by: card_id, window: 1h, ending: 1h, label_delay: 3h}",
         "feature 'f': label_delay must be shorter than the window plus its ending", "3h", None),
        # conditioned windows: the shape, then the condition itself, at the token
        ("{agg: count, by: card_id, window: 1h, where: 3}",
         "feature 'f': where must be a condition", "3}", None),
        ("{agg: is_new, of: device_id, by: card_id, window: 1h, where: \"amount > 1\"}",
         "feature 'f': agg is_new takes no where", '"amount', None),
        ("{agg: count, by: card_id, window: 1h, where: \"amont > 100\"}",
         "feature 'f', where: unknown field 'amont'", "amont", "amount"),
        ("{agg: count, by: card_id, window: 1h, where: \"amount > 100 and\"}",
         "feature 'f', where: unexpected end of the expression", '"}', None),
        ("{agg: count, by: card_id, window: 1h, where: \"amount + 1\"}",
         "feature 'f', where: a condition must be true or false, got a number", "+ 1", None),
        ("{agg: count, by: card_id, window: 1h, where: \"other > 1\"}",
         "feature 'f', where: unknown field 'other'", "other", None),
        ("{agg: count, by: card_id, window: 1h, where: \"card_id in list('blocked_cards')\"}",
         "feature 'f', where: a where condition cannot read a maintained list", "list(", None),
        # percentiles
        ("{agg: percentile, of: amount, by: card_id, window: 1h}",
         "feature 'f': percentile needs q, a number from 0 to 1", "{", None),
        ("{agg: percentile, q: 1.5, of: amount, by: card_id, window: 1h}",
         "feature 'f': percentile needs q", "1.5", None),
        ("{agg: median, q: 0.5, of: amount, by: card_id, window: 1h}",
         "feature 'f': median takes no q", "0.5", None),
        ("{agg: mean, q: 0.5, of: amount, by: card_id, window: 1h}",
         "feature 'f': only percentile takes a q", "0.5", None),
        ("{agg: percentil, q: 0.5, of: amount, by: card_id, window: 1h}",
         "unknown agg 'percentil' in feature 'f'", "percentil", "percentile"),
        ("{agg: median, of: device_id, by: card_id, window: 1h}",
         "feature 'f': agg median needs 'of' = one of amount", "device_id", None),
        # time since fraud
        ("{agg: time_since_fraud, by: card_id, label_delay: 1h, window: 30m}",
         "feature 'f': label_delay must be shorter than the window", "1h,", None),
        ("{agg: time_since_fraud, by: device_id, labels: analyst}",
         "feature 'f' with labels cannot group by 'device_id'", "device_id", None),
        ("{agg: time_since_fraud, by: card_id, of: amount}",
         "feature 'f': agg time_since_fraud takes no 'of'", "amount}", None),
    ],
)  # fmt: skip
def test_feature_errors_are_located_in_the_file(decl, message, at, suggestion):
    """Each error points at the value at fault (``at``: its text), inside a where condition
    at the token."""
    err = one_error(feature(decl))
    assert err.message.startswith(message), err.message
    col = len("  f: ") + decl.index(at) + 1
    assert (err.file, err.line, err.col, err.suggestion) == ("rules/x.yaml", 2, col, suggestion)


def test_a_where_error_on_a_folded_line_is_located_where_it_is_written():
    text = (
        textwrap.dedent("""\
        features:
          big:
            agg: count
            by: card_id
            window: 1h
            where: >-
              amount > 100
              and chanel == 'online'
        """)
        + RULE
    )
    err = one_error(text)
    assert err.message == "feature 'big', where: unknown field 'chanel'"
    assert (err.line, err.col, err.suggestion) == (8, 11, "channel")


def test_a_where_condition_reads_the_files_lists_and_calendar_built_ins():
    rules = parse_rules(
        {
            "x.yaml": textwrap.dedent("""\
        lists:
          south: [ES, IT]
        features:
          f: {agg: count, by: card_id, window: 1h, where: "country in south and is_night"}
        rules:
          - {id: r, when: f > 0, score: 1}
        """)
        }
    )
    (spec,) = rules.features
    assert isinstance(spec.condition, RowCondition) and spec.where.startswith("country")
    batch = pd.DataFrame(
        {
            "ts": pd.to_datetime(
                ["2024-01-01 01:00", "2024-01-01 12:00", "2024-01-01 02:00"], utc=True
            ),
            "country": ["ES", "ES", "FR"],
        }
    )
    assert spec.condition(batch).tolist() == [True, False, False]


def test_a_where_condition_with_a_missing_value_does_not_hold():
    cond = compile_condition("amount > 100 or channel == 'pos'", lists={})
    batch = pd.DataFrame({"amount": [float("nan"), 150.0], "channel": [None, None]})
    assert cond(batch).tolist() == [False, True]


def test_the_same_where_condition_twice_in_a_rule_set_is_one_condition():
    from workbench.features import FeatureEngine

    rules = parse_rules({"x.yaml": feature("{agg: count, by: card_id, window: 1h, where: "
                                           "\"amount > 1\"}").replace(
        "  f:", "  g: {agg: sum, of: amount, by: card_id, window: 2h, where: \"amount > 1\"}\n  f:"
    )})  # fmt: skip
    engine = FeatureEngine(rules.features)
    assert len(engine._conditions) == 1


def test_rule_ids_in_any_case_are_unique_ignoring_case():
    rules = parse_rules({"x.yaml": "rules:\n  - {id: HighAmount_1, when: amount > 1, score: 1}\n"})
    assert rules.rules[0].id == "HighAmount_1"
    text = (
        "rules:\n  - {id: Velocity, when: amount > 1, score: 1}\n"
        "  - {id: velocity, when: amount > 2, score: 1}\n"
    )
    err = one_error(text)
    assert err.message == (
        "duplicate rule id 'velocity' (ids are compared ignoring case) (also 'Velocity', at "
        "rules/x.yaml:2:10)"
    )
    assert (err.line, err.col) == (3, 10)


def test_rule_groups_are_names_in_any_case_one_spelling_kept():
    rules = parse_rules(
        {
            "x.yaml": textwrap.dedent("""\
        rules:
          - {id: a, when: amount > 1, score: 10, group: Velocity}
          - {id: b, when: amount > 2, score: 20, group: velocity}
          - {id: c, when: amount > 3, score: 5}
        """)
        }
    )
    assert [r.group for r in rules.rules] == ["Velocity", "Velocity", None]
    err = one_error("rules:\n  - {id: a, when: amount > 1, score: 1, group: 'two words'}\n")
    assert err.message.startswith("group 'two words' must be a name")
    assert (err.line, err.col, err.rule_id) == (2, 48, "a")
    err = one_error("rules:\n  - {id: a, when: amount > 1, score: 1, gruop: x}\n")
    assert (err.message, err.suggestion) == ("unknown key 'gruop'", "group")

"""Loading rule files: shape checks, merge across files, located errors, version hash,
examples."""

from __future__ import annotations

import os
import pickle
import textwrap

import numpy as np
import pandas as pd
import pytest

from workbench.bands import Band
from workbench.errors import RuleError, RuleSetError
from workbench.rules import (
    AlertPolicy,
    Bands,
    Rule,
    RuleSet,
    load_rules,
    parse_rules,
)

DEFAULT = textwrap.dedent("""\
    bands: {medium: 40, high: 70}          # score 0..100 -> Low / Medium / High
    alert: {min_band: high, dedup: 10m}    # one open alert per card per window
    lists:
      risky_mcc: [gambling, crypto, money_transfer]
    features:
      card_tx_10m:  {agg: count, by: card_id, window: 10m}
      cust_avg_30d: {agg: mean, of: amount, by: customer_id, window: 30d}
    rules:
      - id: spend_spike
        description: Amount far above the customer's 30-day average
        when: amount > 5 * cust_avg_30d and cust_avg_30d > 0
        score: 35
        enabled: true
        tags: [amount]
        examples: {match: [{amount: 600, cust_avg_30d: 50}],
                   no_match: [{amount: 60, cust_avg_30d: 50}]}
      - id: risky_merchant
        when: merchant_category in risky_mcc
        score: 20
      - id: trusted
        when: card_tx_10m == 0 and amount < 5
        score: -10
        enabled: false
    """)


def one_error(text: str, name: str = "rules/default.yaml") -> RuleError:
    with pytest.raises(RuleError) as info:
        parse_rules({name: text})
    assert not isinstance(info.value, RuleSetError), str(info.value)
    return info.value


def rule_file(when: str, extra: str = "") -> str:
    return f"rules:\n  - id: r1\n    when: {when}\n    score: 10\n{extra}"


# -- the happy path -----------------------------------------------------------------------
def test_load_the_documented_example(tmp_path):
    (tmp_path / "default.yaml").write_text(DEFAULT)
    rs = load_rules(tmp_path)
    assert isinstance(rs, RuleSet)
    assert rs.bands == Bands(40, 70) and rs.alert == AlertPolicy(Band.HIGH, 600.0)
    assert rs.lists == {"risky_mcc": ("gambling", "crypto", "money_transfer")}
    assert [f.name for f in rs.features] == ["card_tx_10m", "cust_avg_30d"]
    assert [r.id for r in rs.rules] == ["spend_spike", "risky_merchant", "trusted"]
    assert [r.id for r in rs.enabled_rules] == ["spend_spike", "risky_merchant"]
    assert rs.fields_used == {"amount", "cust_avg_30d", "merchant_category"}
    spike = rs.rules[0]
    assert isinstance(spike, Rule)
    assert spike.file == f"{tmp_path.name}/default.yaml" and spike.line == 9
    assert spike.score == 35.0 and spike.tags == ("amount",) and spike.enabled
    assert spike.description.startswith("Amount far above")
    assert spike.examples == {
        "match": [{"amount": 600.0, "cust_avg_30d": 50.0}],
        "no_match": [{"amount": 60.0, "cust_avg_30d": 50.0}],
    }
    assert rs.rules[2].score == -10.0 and not rs.rules[2].enabled
    assert rs.texts == {f"{tmp_path.name}/default.yaml": DEFAULT}
    env = {"amount": np.array([600.0, 10.0]), "cust_avg_30d": np.array([50.0, np.nan])}
    hit, err = spike.expr(env, 2)
    assert hit.tolist() == [True, False] and not err.any()


ONE_RULE = "rules:\n  - {id: r1, when: amount > 1, score: 1}\n"


def test_defaults():
    rs = parse_rules({"a.yaml": ONE_RULE, "c.yaml": "rules: []\n"})
    assert rs.bands == Bands(40.0, 70.0) and rs.alert == AlertPolicy(Band.HIGH, 600.0)
    assert [r.id for r in rs.rules] == ["r1"] and rs.fields_used == frozenset({"amount"})
    rs = parse_rules({"a.yaml": "bands: {high: 90}\nalert: {dedup: 1h}\n", "b.yaml": ONE_RULE})
    assert rs.bands == Bands(40.0, 90.0) and rs.alert == AlertPolicy(Band.HIGH, 3600.0)


@pytest.mark.parametrize(
    "text",
    ["", "\n\n   \n", "# only a comment\n", "  # indented\n\n# two\n", "---\n", "~\n", "null"],
)
def test_an_empty_or_comment_only_file_is_refused_with_its_path(text):
    with pytest.raises(RuleError, match="empty or holds only comments") as info:
        parse_rules({"rules/empty.yaml": text, "rules/good.yaml": ONE_RULE})
    assert not isinstance(info.value, RuleSetError)
    assert info.value.file == "rules/empty.yaml"


def test_an_empty_file_in_a_directory_is_refused_with_its_path(tmp_path):
    (tmp_path / "good.yaml").write_text(ONE_RULE)
    (tmp_path / "empty.yaml").write_text("# nothing yet\n")
    with pytest.raises(RuleError, match="empty or holds only comments") as info:
        load_rules(tmp_path)
    assert info.value.file == f"{tmp_path.name}/empty.yaml"
    assert str(info.value).endswith(f"({tmp_path.name}/empty.yaml)")


def test_a_file_whose_keys_are_all_empty_sets_nothing():
    err = one_error("rules:\nlists:\n", name="rules/stub.yaml")
    assert "sets nothing" in err.message and (err.file, err.line, err.col) == (
        "rules/stub.yaml",
        1,
        1,
    )


def test_a_rule_set_without_rules_is_refused(tmp_path):
    # Settings and lists alone are fine in one file, but the set as a whole must score.
    shared = "bands: {high: 90}\nlists:\n  risky: [a]\n"
    with pytest.raises(RuleError, match="has no rules") as info:
        parse_rules({"rules/shared.yaml": shared, "rules/none.yaml": "rules: []\n"})
    assert info.value.file == "rules/none.yaml"
    (tmp_path / "shared.yaml").write_text(shared)
    with pytest.raises(RuleError, match="has no rules") as info:
        load_rules(tmp_path)
    assert info.value.file == str(tmp_path)  # the directory: no one file is at fault
    with pytest.raises(RuleError, match="has no rules"):
        parse_rules({})


def test_yaml_12_scalars_norway_stays_a_string():
    rs = parse_rules(
        {
            "a.yaml": "lists:\n  countries: [NO, 'yes', on, FR]\n"
            "rules:\n  - {id: a, when: country in countries, score: 1,"
            " examples: {match: [{country: NO}]}}\n"
        }
    )
    assert rs.lists["countries"] == ("NO", "yes", "on", "FR")


def test_rule_set_is_picklable_error_too():
    err = one_error(rule_file("amout > 1"))
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err)


# -- directories and files ----------------------------------------------------------------
def test_directory_discovery_skips_hidden_and_temp_files(tmp_path):
    ok = "rules:\n  - {id: %s, when: amount > 1, score: 1}\n"
    (tmp_path / "b.yaml").write_text(ok % "from_b")
    (tmp_path / "a.yml").write_text(ok % "from_a")
    for junk in (".#b.yaml", "b.yaml~", ".b.yaml.swp", ".hidden.yaml", "notes.txt", "#b.yaml#"):
        (tmp_path / junk).write_text("this: [is not valid")
    (tmp_path / "sub.yaml").mkdir()
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "c.yaml").write_text(ok % "nested")
    rs = load_rules(str(tmp_path))
    assert [r.id for r in rs.rules] == ["from_a", "from_b"]
    assert [r.file for r in rs.rules] == [f"{tmp_path.name}/a.yml", f"{tmp_path.name}/b.yaml"]
    explicit = load_rules([tmp_path / "b.yaml", tmp_path / "nested" / "c.yaml"])
    assert {r.id: r.file for r in explicit.rules} == {  # sorted by file name, like a directory
        "nested": "nested/c.yaml",
        "from_b": f"{tmp_path.name}/b.yaml",
    }


def test_missing_paths_and_empty_directories(tmp_path):
    with pytest.raises(RuleError, match="not found"):
        load_rules(tmp_path / "nope")
    with pytest.raises(RuleError, match="no rule files"):
        load_rules(tmp_path)


def test_non_utf8_file_is_a_located_error(tmp_path):
    (tmp_path / "bad.yaml").write_bytes(b"rules: \xff\xfe\n")
    with pytest.raises(RuleError, match="not UTF-8") as info:
        load_rules(tmp_path)
    assert info.value.file == f"{tmp_path.name}/bad.yaml"


# -- merge and duplicates -----------------------------------------------------------------
def test_merge_across_files():
    rs = parse_rules(
        {
            "rules/b.yaml": "rules:\n  - {id: b1, when: card_tx_10m > mcc and "
            "merchant_category in risky, score: 5}\n",
            "rules/a.yaml": "lists:\n  risky: [crypto]\nfeatures:\n  card_tx_10m: {agg: count, by: "
            "card_id, window: 10m}\n  mcc: {agg: distinct, of: merchant_category, by: "
            "card_id, window: 1h}\nbands: {medium: 30, high: 60}\n",
            "rules/c.yaml": "bands: {medium: 30, high: 60}\nrules:\n  - {id: c1, when: is_night, "
            "score: 5}\n",
        }
    )
    assert [r.id for r in rs.rules] == ["b1", "c1"]
    assert rs.bands == Bands(30.0, 60.0)


def test_mcc_distinct_is_a_number_so_in_a_string_list_is_a_type_error():
    text = (
        "lists:\n  risky: [crypto]\nfeatures:\n  mcc: {agg: distinct, of: merchant_category,"
        " by: card_id, window: 1h}\nrules:\n  - {id: b1, when: mcc in risky, score: 5}\n"
    )
    err = one_error(text)
    assert "cannot test a number against list 'risky'" in err.message
    assert (err.line, err.col, err.rule_id) == (6, 24, "b1")  # at 'in'


def test_duplicates_name_both_places():
    with pytest.raises(RuleSetError) as info:
        parse_rules(
            {
                "rules/a.yaml": "lists:\n  l1: [x]\nfeatures:\n  f1: {agg: count, by: card_id, "
                "window: 1m}\nrules:\n  - {id: dup, when: amount > 1, score: 1}\n",
                "rules/b.yaml": "lists:\n  l1: [y]\nfeatures:\n  f1: {agg: count, by: card_id, "
                "window: 2m}\nrules:\n  - id: dup\n    when: amount > 2\n    score: 2\n",
            }
        )
    messages = [str(e) for e in info.value.errors]
    assert messages == [
        "duplicate list 'l1' (also at rules/a.yaml:2:3) (rules/b.yaml:2:3)",
        "duplicate feature 'f1' (also at rules/a.yaml:4:3) (rules/b.yaml:4:3)",
        "duplicate rule id 'dup' (also at rules/a.yaml:6:10) in rule 'dup' (rules/b.yaml:6:9)",
    ]


def test_duplicate_key_within_a_file():
    err = one_error("rules:\n  - id: a\n    when: amount > 1\n    score: 1\n    score: 2\n")
    assert "duplicate key 'score' (first on line 4)" in err.message
    assert (err.line, err.col) == (5, 5)


def test_bands_and_alert_in_two_files_must_agree():
    with pytest.raises(RuleError, match=r"'bands' is set differently in a\.yaml:1:8") as info:
        parse_rules(
            {
                "a.yaml": "bands: {medium: 40, high: 70}\n",
                "b.yaml": "bands: {medium: 50, high: 70}\n",
            }
        )
    assert info.value.file == "b.yaml"
    parse_rules(
        {
            "a.yaml": "alert: {min_band: medium}\n",
            "b.yaml": "alert: {min_band: medium}\n",
            "c.yaml": ONE_RULE,
        }
    )
    with pytest.raises(RuleError, match="'alert' is set differently"):
        parse_rules(
            {"a.yaml": "alert: {min_band: medium}\n", "b.yaml": "alert: {min_band: high}\n"}
        )


# -- located errors -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("when_yaml", "line", "col"),
    [
        ("amount > 1 and chanel == 'x'", 3, 26),  # plain
        ("\"amount > 1 and chanel == 'x'\"", 3, 27),  # double quoted
        ("'amount > 1 and chanel == ''x'''", 3, 27),  # single quoted
        ("|\n      amount > 1 and\n        chanel == 'x'", 5, 9),  # literal block
        (">-\n      amount > 1\n      and chanel == 'x'", 5, 11),  # folded block
        ("amount > 1\n      and chanel == 'x'", 4, 11),  # multi-line plain
        ("|  # a comment with chanel in it\n      amount > 1 and chanel == 'x'", 4, 22),
    ],
)
def test_expression_errors_point_at_the_token_in_the_file(when_yaml, line, col):
    text = f"rules:\n  - id: r1\n    when: {when_yaml}\n    score: 10\n"
    err = one_error(text)
    assert err.message == "unknown field 'chanel'"
    assert (err.file, err.line, err.col, err.rule_id, err.suggestion) == (
        "rules/default.yaml",
        line,
        col,
        "r1",
        "channel",
    )
    assert text.splitlines()[line - 1][col - 1 :].startswith("chanel")


def test_message_format_matches_the_documented_one():
    text = "\n" * 10 + "rules:\n  - id: big_amount\n    when: amout > 100\n    score: 10\n"
    err = one_error(text)
    assert str(err) == (
        "unknown field 'amout' in rule 'big_amount' (rules/default.yaml:13:11)"
        " — did you mean 'amount'?"
    )


@pytest.mark.parametrize(
    ("text", "message", "line", "col", "rule_id", "suggestion"),
    [
        ("rule:\n  - {}\n", "unknown key 'rule' in the rule file", 1, 1, None, "rules"),
        (rule_file("amount > 1", "    tag: [x]\n"), "unknown key 'tag'", 5, 5, "r1", "tags"),
        (
            rule_file("is_fraud"),
            "field 'is_fraud' is a label and cannot be used in rules",
            3,
            11,
            "r1",
            None,
        ),
        (rule_file("sqrtt(amount) > 1"), "unknown function 'sqrtt'", 3, 11, "r1", "sqrt"),
        (rule_file("amount + 'x' > 1"), "'+' needs numbers, got a string", 3, 20, "r1", None),
        (rule_file("amount > 1 and"), "unexpected end of the expression", 3, 25, "r1", None),
        (rule_file("amount"), "a condition must be true or false, got a number", 3, 11, "r1", None),
        (
            "rules:\n  - id: 9Big\n    when: amount > 1\n    score: 1\n",
            "rule id '9Big' must match [A-Za-z][A-Za-z0-9_]* (at most 64 characters; unique",
            2,
            9,
            None,
            None,
        ),
        (
            "rules:\n  - id: a\n    when: amount > 1\n    score: 101\n",
            "score must be between -100 and 100, got 101",
            4,
            12,
            "a",
            None,
        ),
        (
            "rules:\n  - id: a\n    when: amount > 1\n    score: .nan\n",
            "score must be a number, got '.nan'",
            4,
            12,
            "a",
            None,
        ),
        (
            "rules:\n  - id: a\n    when: amount > 1\n    score: '5'\n",
            "score must be a number, got '5'",
            4,
            12,
            "a",
            None,
        ),
        ("rules:\n  - id: a\n    score: 1\n", "rule has no 'when'", 2, 5, "a", None),
        (
            "rules:\n  - id: a\n    when: amount > 1\n    score: 1\n    enabled: yes\n",
            "enabled must be true or false, got 'yes'",
            5,
            14,
            "a",
            None,
        ),
        (
            "rules:\n  - id: a\n    when: amount > 1\n    score: 1\n    tags: amount\n",
            "tags must be a list of names such as [amount, velocity]",
            5,
            11,
            "a",
            None,
        ),
        (
            "rules: {id: a}\n",
            "rules must be a list of rules (each starting with '- id:')",
            1,
            8,
            None,
            None,
        ),
        (
            "bands: {medium: 80, high: 70}\n",
            "bands need 0 < medium < high <= 100, got medium 80, high 70",
            1,
            8,
            None,
            None,
        ),
        ("bands: {medium: 40, hihg: 70}\n", "unknown key 'hihg' in bands", 1, 21, None, "high"),
        (
            "alert: {min_band: hihg}\n",
            "alert.min_band must be medium or high, got 'hihg'",
            1,
            19,
            None,
            "high",
        ),
        (
            "alert: {dedup: 10x}\n",
            "alert.dedup: not a duration: '10x' (use e.g. 90s, 10m, 1h30m, 7d)",
            1,
            16,
            None,
            None,
        ),
        (
            "lists:\n  l: [a, 1]\n",
            "list 'l' mixes strings and numbers; quote the numbers",
            2,
            6,
            None,
            None,
        ),
        (
            "lists:\n  Bad: [a]\n",
            "list name 'Bad' must match [a-z][a-z0-9_]* (at most 64 characters)",
            2,
            3,
            None,
            None,
        ),
        (
            "features:\n  f: {agg: count, by: card, window: 10m}\n",
            "feature 'f' cannot group by 'card' (one of: card_id, customer_id, terminal_id, "
            "merchant_category, device_id)",
            2,
            23,
            None,
            "card_id",
        ),
        (
            "features:\n  f: {agg: cnt, by: card_id, window: 10m}\n",
            "unknown agg 'cnt' in feature 'f' (one of: count, sum, mean, max, min, std, distinct, "
            "is_new, fraud_count, fraud_rate, median, percentile, seconds_since_prev, distance_km, "
            "speed_kmh, time_since_fraud)",
            2,
            12,
            None,
            "count",
        ),
        (
            "features:\n  amount: {agg: count, by: card_id, window: 10m}\n",
            "feature 'amount' has the name of a transaction field",
            2,
            3,
            None,
            None,
        ),
        (
            "features:\n  hour: {agg: count, by: card_id, window: 10m}\n",
            "feature 'hour' has the name of a built-in feature",
            2,
            3,
            None,
            None,
        ),
        (
            "lists:\n  country: [FR]\n",
            "list 'country' has the name of a transaction field",
            2,
            3,
            None,
            None,
        ),
        (
            "rules:\n  - id: a\n    when: [amount]\n    score: 1\n",
            "when must be a condition such as: amount > 1000",
            3,
            11,
            "a",
            None,
        ),
        (
            "rules: [\n",
            "YAML syntax error: while parsing a flow node did not find expected node content",
            2,
            1,
            None,
            None,
        ),
        ("rules:\n  - id: a\n  when: x\n", "YAML syntax error", 3, 3, None, None),
        (
            "- just\n- a list\n",
            "a rule file must be a mapping with keys bands, alert, lists, features, rules",
            1,
            1,
            None,
            None,
        ),
    ],
)
def test_every_error_kind_is_located(text, message, line, col, rule_id, suggestion):
    err = one_error(text)
    assert err.message.startswith(message), err.message
    assert (err.file, err.line, err.col, err.rule_id, err.suggestion) == (
        "rules/default.yaml",
        line,
        col,
        rule_id,
        suggestion,
    )


def test_all_errors_of_a_load_are_collected_in_file_order():
    with pytest.raises(RuleSetError) as info:
        parse_rules(
            {
                "b.yaml": rule_file("amout > 1"),
                "a.yaml": "rules:\n  - id: x\n    when: chanel == 'pos' or flg\n    score: 500\n",
            }
        )
    errors = info.value.errors
    assert [(e.file, e.line, e.col) for e in errors] == [
        ("a.yaml", 3, 11),
        ("a.yaml", 3, 30),
        ("a.yaml", 4, 12),
        ("b.yaml", 3, 11),
    ]
    assert str(info.value).count("\n") == 3


# -- version ------------------------------------------------------------------------------
def test_version_is_a_content_hash(tmp_path):
    texts = {"rules/a.yaml": rule_file("amount > 1"), "rules/b.yaml": "lists: {l: [x]}\n"}
    v1 = parse_rules(texts).version
    assert len(v1) == 16 and int(v1, 16) >= 0
    assert parse_rules(dict(reversed(list(texts.items())))).version == v1
    assert parse_rules({**texts, "rules/b.yaml": "lists: {l: [x]} \n"}).version != v1
    assert parse_rules({**texts, "rules/b.yaml": "lists: {l: [y]}\n"}).version != v1
    renamed = {"rules/c.yaml" if k.endswith("b.yaml") else k: v for k, v in texts.items()}
    assert parse_rules(renamed).version != v1
    # The same directory loaded by a relative or absolute path has the same version.
    rules = tmp_path / "rules"
    rules.mkdir()
    for name, text in texts.items():
        (tmp_path / name).write_text(text)
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        relative = load_rules("rules")
    finally:
        os.chdir(cwd)
    absolute = load_rules(rules)
    assert relative.version == absolute.version == v1
    assert parse_rules(absolute.texts).version == v1


# -- examples -----------------------------------------------------------------------------
def test_examples_that_fail_are_located_errors():
    text = textwrap.dedent("""\
        rules:
          - id: big
            when: amount > 100
            score: 10
            examples:
              match:
                - {amount: 150}
                - {amount: 50}
              no_match:
                - {amount: 500}
        """)
    with pytest.raises(RuleSetError) as info:
        parse_rules({"r.yaml": text})
    assert [str(e) for e in info.value.errors] == [
        "example match[1] does not hit in rule 'big' (r.yaml:8:11)",
        "example no_match[0] hits but should not in rule 'big' (r.yaml:10:11)",
    ]


def test_example_values_are_type_checked_and_names_known():
    base = "rules:\n  - id: e\n    when: amount > 1 and channel == 'ecom'\n    score: 1\n"
    cases = [
        (
            "    examples: {match: [{amount: '5', channel: ecom}]}\n",
            "example match[0]: 'amount' must be a number, got '5'",
            "'5'",
        ),
        (
            "    examples: {match: [{amount: 5, channel: 7}]}\n",
            "example match[0]: 'channel' must be a string, got '7' (quote it)",
            "7",
        ),
        (
            "    examples: {match: [{amount: 5, chanel: ecom}]}\n",
            "unknown field 'chanel' in example match[0]",
            "chanel",
        ),
        (
            "    examples: {match: [{amount: 5, is_fraud: true}]}\n",
            "field 'is_fraud' is a label and cannot be used in rules",
            "is_fraud",
        ),
        ("    examples: {macth: []}\n", "unknown key 'macth'", "macth"),
        (
            "    examples: {match: [{amount: 5, ts: 'not a time'}]}\n",
            "example match[0]: 'ts' must be a timestamp",
            "'not",
        ),
        ("    examples: {match: [[5]]}\n", "example match[0] must be a mapping", "[5]"),
    ]
    for extra, message, token in cases:
        err = one_error(base + extra)
        assert err.message.startswith(message), err.message
        assert (err.line, err.col, err.rule_id) == (5, extra.index(token) + 1, "e")


def test_examples_with_missing_values_use_three_valued_logic():
    text = textwrap.dedent("""\
        features:
          avg: {agg: mean, of: amount, by: card_id, window: 1d}
        rules:
          - id: not_above
            when: not (amount > 2 * avg)
            score: 5
            examples:
              match: [{amount: 10, avg: 10}]
              no_match: [{amount: 10}, {avg: 1}, {}, {amount: 30, avg: 10}]
          - id: div
            when: amount / avg > 2
            score: 5
            examples:
              no_match: [{amount: 1, avg: 0}]
          - id: ts_rule
            when: hour(ts) >= 22 or is_night
            score: 5
            examples:
              match:
                - {ts: '2024-05-01T23:30:00Z'}
                - {is_night: true}
                - {ts: '2024-05-01T01:00:00+03:00', is_night: false}
              no_match: [{ts: '2024-05-01T12:00:00'}]
        """)
    rs = parse_rules({"r.yaml": text})
    assert [r.id for r in rs.rules] == ["not_above", "div", "ts_rule"]
    with pytest.raises(RuleError, match=r"example match\[0\] does not hit \(a data error"):
        parse_rules(
            {
                "r.yaml": text.replace(
                    "no_match: [{amount: 1, avg: 0}]", "match: [{amount: 1, avg: 0}]"
                )
            }
        )


def test_env_of_a_loaded_rule_set_evaluates_like_the_examples():
    rs = parse_rules({"rules/default.yaml": DEFAULT})
    env = {
        "amount": np.array([600.0, 60.0, 4.0]),
        "cust_avg_30d": np.array([50.0, 50.0, 0.0]),
        "merchant_category": pd.Series(["crypto", "grocery", None], dtype="str"),
        "card_tx_10m": np.array([0.0, 0.0, 0.0]),
    }
    hits = {r.id: r.expr(env, 3)[0].tolist() for r in rs.rules}
    assert hits == {
        "spend_spike": [True, False, False],
        "risky_merchant": [True, False, False],
        "trusted": [False, False, True],
    }
    assert rs.field_types["cust_avg_30d"] == ("number", True)

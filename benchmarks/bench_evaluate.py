"""Evaluation of one batch: the stream's scoring against the offline evaluators' (prints figures).

Every evaluator (stream, backtest, what-if, reload dry run) now goes through
``Scorer.evaluation`` (:mod:`workbench.scoring.evaluate`), which hands back the boolean hit
matrix it computed anyway. Before, the backtest and the what-if called ``Scorer.score`` and
rebuilt that matrix from the long-format hits (``_hit_matrix``, reproduced below as the
reference). Measured side by side on the same batch and precomputed features, best of
``--repeat``:

1. ``Scorer.score`` (what the stream's detect node runs; exists before and after);
2. before: ``Scorer.score`` + the matrix rebuilt from the long hits;
3. after: ``Scorer.evaluation`` (matrix included) + ``hit_frame()``;
4. the same three with a maintained list (``--blocked`` cards) and ``--snoozes`` snoozes.

Run it on an older checkout too (``PYTHONPATH=<checkout>``): lines that need
``Scorer.evaluation`` are skipped there, the rest are comparable.

Usage: python benchmarks/bench_evaluate.py [--rows 20000] [--repeat 7] [--quick]
(--quick: best of 3.)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from _report import figure
from bench_scoring import best_of  # the same timing as the scoring benchmark

from workbench.features import FeatureEngine
from workbench.rules import parse_rules
from workbench.scoring.overlay import Overlay
from workbench.scoring.scorer import Scorer
from workbench.sources.simulator import Simulator

AFTER = hasattr(Scorer, "evaluation")  # an older checkout: the "after" figures are skipped
ROOT = Path(__file__).resolve().parents[1]
LIST_RULE = """
rules:
  - id: blocked_card
    when: card_id in list("blocked_cards")
    score: 80
"""


def rebuilt_matrix(hits: pd.DataFrame, rule_ids: list[str], n: int) -> pd.DataFrame:
    """The hit matrix as the backtest and the what-if rebuilt it before (the reference)."""
    matrix = np.zeros((n, len(rule_ids)), dtype=bool)
    if len(hits):
        cols = pd.Categorical(hits["rule_id"], categories=rule_ids).codes
        keep = cols >= 0
        matrix[hits["row"].to_numpy(np.int64)[keep], cols[keep]] = True
    return pd.DataFrame(matrix, columns=rule_ids)


def overlay_for(batch: pd.DataFrame, blocked: int, snoozes: int) -> Overlay:
    cards = pd.unique(batch["card_id"].astype(str))
    listed = list(cards[:blocked])
    until = batch["ts"].iloc[len(batch) // 2]
    frame = pd.DataFrame(
        {
            "rule_id": ["blocked_card"] * min(snoozes, len(listed)),
            "kind": ["card"] * min(snoozes, len(listed)),
            "value": listed[:snoozes],
            "until": [until] * min(snoozes, len(listed)),
        }
    )
    return Overlay.build({"blocked_cards": listed}, frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--blocked", type=int, default=1_000)
    parser.add_argument("--snoozes", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="a brief run (make bench)")
    args = parser.parse_args()
    if args.quick:
        args.repeat = min(args.repeat, 3)

    texts = {f"rules/{p.name}": p.read_text() for p in sorted((ROOT / "rules").glob("*.yaml"))}
    ruleset = parse_rules({**texts, "rules/lists.yaml": LIST_RULE})
    sim = Simulator(seed=3)
    warm, batch = sim.next_batch(args.rows).frame, sim.next_batch(args.rows).frame
    engine = FeatureEngine(ruleset.features)
    engine.compute(warm)
    feats = engine.compute_arrays(batch)
    rule_ids = [r.id for r in ruleset.enabled_rules]
    n = len(batch)
    print(f"one batch of {n:,} rows, {len(rule_ids)} rules, best of {args.repeat}")
    listed = overlay_for(batch, args.blocked, args.snoozes)
    for label, overlay in (
        ("no lists or snoozes", Overlay()),
        (f"{args.blocked:,} listed cards, {args.snoozes:,} snoozes", listed),
    ):
        scorer = Scorer(ruleset, overlay)
        stream = best_of(args.repeat, lambda s=scorer: s.score(batch, feats))

        def before(s=scorer):
            _scores, hits, _errors = s.score(batch, feats)
            return rebuilt_matrix(hits, rule_ids, n)

        old = best_of(args.repeat, before)
        line = f"  {label:<40} stream score {stream * 1e3:7.2f} ms   before {old * 1e3:7.2f} ms"
        if AFTER:
            new = best_of(args.repeat, lambda s=scorer: s.evaluation(batch, feats).hit_frame())
            same = before().equals(scorer.evaluation(batch, feats).hit_frame())
            line += f"   after {new * 1e3:7.2f} ms   (same matrix: {same})"
        print(line)
        if AFTER:
            figure(
                f"evaluation + hit matrix, {label}",
                new * 1e3,
                "ms",
                anchor="score + matrix rebuilt (before)",
                ratio=new / old,
            )


if __name__ == "__main__":
    main()

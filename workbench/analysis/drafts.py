"""Rule drafts from a notebook: written beside the live rules, reviewed, published only through
the reviewed publish path.

A notebook that tunes rules never writes the live rules directory. It writes a **draft**
(:func:`write_draft`: a YAML file under ``.workbench/drafts/`` of the project, checked like a
load), :func:`review` shows what publishing it would change — the dashboard's
:class:`~workbench.dashboard.publishing.Proposal` (the unified diff against the active rule
set) and a backtest of the draft against live — and :func:`publish` carries out exactly that
proposal through :class:`~workbench.dashboard.actions.Actions`: the role is checked, the file
written and the ``rule_sets`` row recorded under the publication lock, and the audit row
(``rules.publish``, actor ``notebook:<os user>``) is written in the same transaction. A
proposal that the rules changed under (another publication, an edited file) is refused as
stale.

The notebook's default identity is the OS user (``notebook:<user>``, provider ``notebook``)
with the role publishing needs (admin): the trust the CLI gives a command run on this machine
(``workbench rules rollback`` records ``cli:<user>``) — the database decides who connects, and
where a publisher database role is configured (``WORKBENCH_PUBLISHER_DATABASE_URL``) that role
is the gate. Pass ``identity=`` to act as someone else; a role that may not publish is refused
and the refusal audited.

>>> # path = write_draft("default.yaml", chosen_text)
>>> # r = review(path, RULES_DIR, dsn=DSN)      # r.proposal.diff, r.comparison.summary
>>> # publish(r, dsn=DSN)                        # True: a rule_sets row and its audit row
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from workbench.analysis.backtest import Backtest, backtest
from workbench.analysis.compare import Comparison
from workbench.auth.roles import Identity, Role
from workbench.dashboard.actions import Actions
from workbench.dashboard.publishing import Proposal
from workbench.pipeline.lists import LISTS_DIR
from workbench.pipeline.reload import author_name
from workbench.rules import RuleSet, parse_rules

__all__ = ["Review", "drafts_dir", "notebook_identity", "publish", "review", "write_draft"]


def notebook_identity() -> Identity:
    """Who publishes from a notebook: ``notebook:<os user>`` (module docstring)."""
    return Identity(f"notebook:{author_name()}", Role.ADMIN, provider="notebook")


def drafts_dir(root: Path | None = None) -> Path:
    """``<project>/.workbench/drafts`` (``root``: the project; default the working
    directory, or its parent inside ``notebooks/``)."""
    if root is None:
        cwd = Path.cwd()
        root = cwd.parent if cwd.name == "notebooks" else cwd
    return root / ".workbench" / "drafts"


def write_draft(name: str, text: str, directory: Path | None = None) -> Path:
    """Check ``text`` as rules file ``name`` (RuleError on any problem) and write it as a
    draft; the draft's path. The live rules directory is not touched."""
    parse_rules({Path(name).name: text})
    target = (directory or drafts_dir()) / Path(name).name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target


@dataclass
class Review:
    """What publishing a draft would do: the proposal (diff against the active rule set) and
    the draft's backtest against live over the stored history."""

    draft: Path
    ruleset: RuleSet
    proposal: Proposal
    result: Backtest
    comparison: Comparison
    identity: Identity


def review(
    draft: Path,
    rules_dir: Path,
    *,
    dsn: str,
    identity: Identity | None = None,
    k: int = 50,
    start=None,
    end=None,
) -> Review:
    """The proposal to replace ``rules_dir``'s file of the draft's name by the draft, and
    the backtest of the resulting rule set (changes nothing)."""
    who = identity or notebook_identity()
    text = Path(draft).read_text(encoding="utf-8")
    proposal = Actions(who, dsn).propose_publish(Path(rules_dir), Path(draft).name, text)
    ruleset = parse_rules(proposal.texts)
    result = backtest(ruleset, start, end, dsn=dsn, lists_dir=Path(rules_dir) / LISTS_DIR)
    return Review(Path(draft), ruleset, proposal, result, result.compare(k=k), who)


def publish(reviewed: Review, *, dsn: str, publisher_dsn: str | None = None) -> bool:
    """Carry out the reviewed proposal exactly as shown (role check, file, rule-set row and
    audit row; :class:`~workbench.dashboard.publishing.StaleProposal` when the rules changed
    since); True when a rule-set row was recorded."""
    return Actions(reviewed.identity, dsn, publisher_dsn).publish(reviewed.proposal)

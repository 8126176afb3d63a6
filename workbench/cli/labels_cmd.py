"""``workbench labels import FILE.csv``: a chargeback file as labels, audited.

The file is checked row by row (vectorized; :mod:`workbench.storage.label_import`) before the
database; bad rows and unknown tx_ids are listed with their line numbers (the first
``SHOWN`` of each, then a count) and are not stored. The good rows and the audit row
(actor ``cli:<os user>``, action ``labels.import``) are written in one transaction.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.auth.roles import Action
from workbench.cli.checks import data_file
from workbench.settings import Settings

SHOWN = 20


def add_parser(sub: argparse._SubParsersAction) -> None:
    labels = sub.add_parser("labels", help="Import labels (chargebacks) for stored transactions.")
    actions = labels.add_subparsers(dest="labels_command", metavar="ACTION", required=True)
    imp = actions.add_parser(
        "import",
        help="Import a CSV of tx_id,label,known_at[,source] (fraud|legitimate; known_at in "
        "event time, ISO 8601); bad rows and unknown tx_ids are reported with line numbers.",
    )
    imp.add_argument("file", metavar="FILE", type=data_file, help="A .csv file.")
    imp.set_defaults(run=run_import)


def run_import(args: argparse.Namespace, settings: Settings) -> int:
    from workbench.pipeline.database import database
    from workbench.pipeline.reload import author_name
    from workbench.storage import audit
    from workbench.storage.label_import import import_file

    who = f"cli:{author_name()}"
    path = Path(args.file)

    def audited(conn, report) -> None:
        audit.record(
            conn,
            actor=who,
            action=Action.IMPORT_LABELS.code,
            provider="cli",
            object=f"labels file {path.name}"[:200],
            after=report.as_dict(),
        )

    with database(settings, migrate=False) as dsn:
        from workbench.storage import shared_store

        report = import_file(shared_store(dsn), path, who, on_done=audited)
    for kind, rows in (("bad row", report.bad), ("unknown tx_id", report.unknown)):
        for line, why in rows[:SHOWN]:
            print(f"{path.name}:{line}: {kind}: {why[:200]!r}"[:300])
        if len(rows) > SHOWN:
            print(f"... and {len(rows) - SHOWN:,} more {kind}s")
    print(
        f"ok: {report.stored:,} labels stored of {report.rows:,} rows "
        f"({len(report.bad):,} bad, {len(report.unknown):,} unknown tx_id)"
    )
    return 0

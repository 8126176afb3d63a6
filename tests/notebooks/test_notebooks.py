"""The notebooks: stored without outputs, and each one runs top to bottom in a real Jupyter
kernel against a real, seeded PostgreSQL and produces its plots."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from nb_offline import export_html

from workbench.analysis import audit_log
from workbench.rules import load_rules

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 120
# Mime types of a rendered HoloViews/hvPlot or Panel object.
# What a batch run of 03-live adds at its end: wait for the run, check it streamed.
BATCH_END_OF_LIVE = """\
stats = run.wait()
print(stats.line())
print(f"view updated {run.pulls} times; {run.live.updates} deltas applied")
assert stats.stored > 0 and run.pulls > 0
"""
PLOT_MIMES = ("application/vnd.holoviews_exec.v0+json", "application/vnd.bokehjs_exec.v0+json")


def test_the_notebooks_exist() -> None:
    assert [p.name for p in NOTEBOOKS] == [
        "01-explore.ipynb",
        "02-tune-rules.ipynb",
        "03-live.ipynb",
        "04-rule-health.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    nb = json.loads(path.read_text(encoding="utf-8"))
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{path.name} cell {i} has stored outputs"
            assert cell.get("execution_count") is None, f"{path.name} cell {i} was executed"
    assert any("plot" in c.get("metadata", {}).get("tags", []) for c in nb["cells"])


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_and_plots(
    path: Path,
    seeded_dsn: str,
    offline_browser,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import nbformat
    from nbclient import NotebookClient

    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)  # 02 would publish here, not in the repo
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", seeded_dsn)
    monkeypatch.setenv("WORKBENCH_RULES_DIR", str(rules))
    monkeypatch.setenv("WORKBENCH_NOTEBOOK_LIVE_S", "15")
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    before = (ROOT / "rules" / "default.yaml").read_bytes()
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    if path.stem == "03-live":
        # A batch run has no browser to keep the kernel free for: it waits for the run's end
        # (in JupyterLab the notebook leaves the kernel free; tests/ui/test_jupyterlab.py).
        nb.cells.append(nbformat.v4.new_code_cell(BATCH_END_OF_LIVE))
    client.execute()  # raises CellExecutionError with the traceback on any failing cell

    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.outputs if o.get("output_type") == "error"]
        assert not errors, f"{path.name} cell {i}: {errors}"
        if "plot" in cell.metadata.get("tags", []):
            mimes = {m for o in cell.outputs for m in o.get("data", {})}
            assert mimes & set(PLOT_MIMES), f"{path.name} cell {i} shows no plot: {sorted(mimes)}"
            html = "".join(str(o["data"].get("text/html", "")) for o in cell.outputs if "data" in o)
            assert "https://cdn" not in html, f"{path.name} cell {i} loads resources from a CDN"
    # Offline, the exported HTML shows its plots: every outside request aborted, none failed.
    seen = offline_browser.render(export_html(nb, tmp_path / f"{path.stem}.html"))
    assert seen.blocked == [], f"{path.name} HTML asked the network for {seen.blocked}"
    assert seen.failed == [], f"{path.name} HTML had failed requests {seen.failed}"
    assert seen.canvases > 0 and seen.roots > 0, f"{path.name} HTML shows no plot: {seen}"
    missing = [e for e in seen.errors if "missing" in e or "Unable to run" in e]
    assert not missing, f"{path.name} HTML: {missing}"
    assert (ROOT / "rules" / "default.yaml").read_bytes() == before
    if path.stem == "02-tune-rules":
        # A draft beside the rules, reviewed; nothing published (PUBLISH is off by default).
        draft = (tmp_path / ".workbench" / "drafts" / "default.yaml").read_text(encoding="utf-8")
        assert draft != before.decode("utf-8")
        assert (rules / "default.yaml").read_bytes() == before
        assert load_rules(rules).version == load_rules(ROOT / "rules").version
        printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
        assert "+bands: {medium:" in printed and "not published" in printed
        assert audit_log(action="rules.publish", dsn=seeded_dsn).empty

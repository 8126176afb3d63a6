"""Installable anywhere, one dashboard path.

* The wheel, built from the files git tracks, is installed into a fresh virtualenv outside the
  repository; in an empty directory ``workbench up`` copies the shipped rules and notebooks,
  migrates a fresh database, serves the dashboard at ``/`` and stores transactions.
* ``panel serve`` with the exact arguments of docker-compose.yml serves the dashboard at ``/``
  too (the same path as ``up`` and the README).

How the fresh virtualenv gets its dependencies, fast and honestly: downloading numpy, numba,
pandas, pyarrow, panel... again for every run would take minutes and prove only that PyPI
works (``make test`` already resolves them from PyPI for each extra interpreter's venv). So
the venv is created empty (``--without-pip``), the wheel is installed into it with
``pip --python VENV install --no-deps``, and the already installed dependencies are made
visible through one ``.pth`` line naming the test interpreter's site-packages. A ``.pth`` line
only appends a path: the ``.pth`` files *inside* that directory (such as the editable
install's finder of this checkout) are not run, and the venv's own site-packages comes first,
so ``workbench`` is imported from the wheel — which the test asserts, together with every
``Requires-Dist`` of the wheel being satisfied by what the venv sees.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PIP = [sys.executable, "-m", "pip"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(condition: Callable[[], object], timeout: float, what: str, proc=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"exited ({proc.returncode}) before {what}")
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            body = r.read().decode(errors="replace")
            return r.status if "Fraud Workbench" in body else -1
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _stored(dsn: str) -> int:
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            return conn.execute("SELECT count(*) FROM transactions").fetchone()[0]
    except psycopg.Error:  # not migrated yet
        return 0


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without our database, rules or dashboard settings, nor PYTHONPATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PG", "WORKBENCH_", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the tracked files (what a clone has, nothing more)."""
    tmp = tmp_path_factory.mktemp("wheel")
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True
    ).stdout.decode()
    source = tmp / "src"
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (path,) = tmp.glob("fraud_workbench-*.whl")
    return path


def test_the_wheel_ships_rules_notebooks_mappings_license_and_types(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = z.read(metadata).decode()
    shipped = {
        "rules": {p.name for p in (ROOT / "rules").glob("*.yaml")},
        "notebooks": {p.name for p in (ROOT / "notebooks").glob("*.ipynb")},
    }
    for kind, files in shipped.items():
        assert files, kind
        assert {f"workbench/_data/{kind}/{f}" for f in files} <= names
    assert "workbench/sources/mappings/handbook.yaml" in names
    assert "workbench/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "License-Expression: Apache-2.0" in meta.splitlines()
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/"))]


def _fresh_venv(tmp: Path, wheel: Path) -> Path:
    venv = tmp / "venv"
    subprocess.run(
        [sys._base_executable, "-m", "venv", "--without-pip", str(venv)],
        check=True,
        timeout=120,
    )
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [*PIP, "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
        env=_clean_env(),  # a PYTHONPATH on a checkout would make pip think it is installed
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    purelib = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (purelib / "_dependencies.pth").write_text("".join(f"{p}\n" for p in sorted(deps)))
    return venv


CHECK_INSTALL = """
import importlib.metadata as md, json, sys
from packaging.requirements import Requirement
import workbench
missing = []
for line in md.requires("fraud-workbench") or []:
    req = Requirement(line)
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    try:
        have = md.version(req.name)
    except md.PackageNotFoundError:
        missing.append(line)
        continue
    if not req.specifier.contains(have, prereleases=True):
        missing.append(f"{line} (have {have})")
print(json.dumps({"file": workbench.__file__, "missing": missing}))
"""


def test_pip_installed_wheel_runs_up_in_an_empty_directory(
    wheel: Path, empty_dsn: str, tmp_path: Path
) -> None:
    began = time.monotonic()
    venv = _fresh_venv(tmp_path, wheel)
    env = _clean_env(PATH=f"{venv / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    home = tmp_path / "empty"
    home.mkdir()
    checked = subprocess.run(
        [str(venv / "bin" / "python"), "-c", CHECK_INSTALL],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stderr
    found = json.loads(checked.stdout)
    assert Path(found["file"]).is_relative_to(venv), f"workbench imported from {found['file']}"
    assert found["missing"] == []
    installed_s = time.monotonic() - began

    port = _free_port()
    env.update(
        WORKBENCH_DATABASE_URL=empty_dsn,  # no tables: up migrates it
        WORKBENCH_DASHBOARD_PORT=str(port),
        WORKBENCH_RATE="500",
    )
    proc = subprocess.Popen(
        [str(venv / "bin" / "workbench"), "up", "--duration", "25"],
        cwd=home,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_for(
            lambda: _status(f"http://127.0.0.1:{port}/") == 200, 180, "the dashboard at /", proc
        )
        served_s = time.monotonic() - began
        _wait_for(lambda: _stored(empty_dsn) > 0, 120, "a stored transaction", proc)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out
    assert f"http://127.0.0.1:{port}/" in out
    assert "Traceback" not in out, out
    # The first run in an empty directory made editable copies of what the wheel ships.
    assert (home / "rules" / "default.yaml").read_bytes() == (
        ROOT / "rules" / "default.yaml"
    ).read_bytes()
    assert sorted(p.name for p in (home / "notebooks").glob("*.ipynb")) == sorted(
        p.name for p in (ROOT / "notebooks").glob("*.ipynb")
    )
    print(
        f"\nwheel {wheel.stat().st_size / 1024:.0f} KiB; fresh venv + install "
        f"{installed_s:.1f}s; dashboard answering at / after {served_s:.1f}s"
    )


def test_panel_serve_as_docker_runs_it_serves_the_dashboard_at_root(
    db_dsn: str, tmp_path: Path
) -> None:
    """The dashboard command of docker-compose.yml, run here: ``/`` answers 200 (the login
    page: the command has the login, whose credentials file needs a user to start)."""
    from workbench.auth.users import UsersFile

    users = tmp_path / "secrets" / "users.json"
    UsersFile(users).add("compose", "a long enough password", "viewer")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    command = compose["services"]["dashboard"]["command"]
    port = _free_port()
    args = []
    skip = False
    for i, arg in enumerate(command):
        if skip:
            skip = False
            continue
        if arg in ("--port", "--address", "--allow-websocket-origin"):
            skip = True  # replaced below: a free port on loopback
            continue
        if i >= 2:
            args.append(arg)
    assert "--index" in args
    panel = Path(sys.executable).parent / "panel"
    origin = ["--allow-websocket-origin", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(
        [str(panel), "serve", *args, "--port", str(port), "--address", "127.0.0.1", *origin],
        cwd=ROOT,
        env=dict(os.environ, WORKBENCH_DATABASE_URL=db_dsn, WORKBENCH_AUTH_USERS_FILE=str(users)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_for(
            lambda: _status(f"http://127.0.0.1:{port}/") == 200, 180, "the dashboard at /", proc
        )
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert not re.search(r"Traceback|ERROR", out), out

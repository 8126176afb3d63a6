# syntax=docker/dockerfile:1
# Fraud Workbench image. Targets:
#   app (default): `workbench` CLI (migrations, pipeline workers) and the Panel dashboard
#   lab:           the same plus JupyterLab, for notebooks next to the live system
# Layer order keeps rebuilds cheap: the dependencies (from pyproject.toml alone) are installed
# before the source is copied, so editing code or rules does not reinstall numpy, numba, panel...

FROM python:3.11-slim-bookworm AS runtime

# NUMBA_CACHE_DIR: the feature kernels compiled at build time (`workbench warmup`, below), read
# by every process of the image (workers, dashboard, notebooks). numba needs the directory
# writable even to load from it, so it belongs to the runtime uid.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WORKBENCH_RULES_DIR=/app/rules \
    NUMBA_CACHE_DIR=/app/.cache/numba

# A fixed uid so bind-mounted rules/ and notebooks/ get predictable ownership.
RUN groupadd --gid 10001 workbench \
    && useradd --uid 10001 --gid workbench --create-home --shell /usr/sbin/nologin workbench

WORKDIR /app

# Dependency layer: only pyproject.toml, so it is rebuilt only when the dependencies change.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Source layer: the package itself (no dependency resolution: they are all installed above).
# setup.py copies rules/ and notebooks/ into the package (what `workbench init` hands out).
COPY README.md LICENSE setup.py ./
COPY workbench ./workbench
COPY rules ./rules
COPY notebooks ./notebooks
# `workbench warmup` compiles the feature kernels into NUMBA_CACHE_DIR, so that a container's
# first batch does not wait for them (a host with another CPU model compiles again, logged).
RUN pip install --no-cache-dir --no-deps . \
    && workbench warmup \
    && mkdir -p /app/notebooks /app/.workbench \
    && chmod 0700 /app/.workbench \
    && chown workbench:workbench /app /app/notebooks /app/.workbench \
    && chown -R workbench:workbench /app/.cache

USER 10001:10001


FROM runtime AS lab

USER 0:0
ARG JUPYTERLAB_VERSION=4.6.6
RUN pip install --no-cache-dir "jupyterlab==${JUPYTERLAB_VERSION}"
USER 10001:10001

EXPOSE 8888
# /api answers without a token and without starting a kernel.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8888/api', timeout=4)"]
CMD ["jupyter", "lab", "--ip=0.0.0.0", "--port=8888", "--no-browser", "--ServerApp.root_dir=/app"]


FROM runtime AS app

EXPOSE 5006
# Panel's /liveness only says the server answers; it does not build a dashboard session.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5006/liveness', timeout=4)"]
# `--index app`: the dashboard at `/`, as under `workbench up` (Panel also keeps `/app`).
CMD ["panel", "serve", "workbench/dashboard/app.py", \
     "--index", "app", \
     "--setup", "workbench/dashboard/startup.py", \
     "--port", "5006", "--address", "0.0.0.0", \
     "--allow-websocket-origin", "localhost:5006", \
     "--liveness"]

# The image the Kubernetes master and worker Jobs run (deploy/kubernetes/, README "Run on
# Kubernetes"): `memsweep run ...` on the master, `memsweep worker ...` on each worker. It drives
# `--target aws` and `--target url`; the local stack (Node.js, dynalite, cgroups) stays on a
# laptop or CI, so neither Node.js nor the test tools are in it.
#
#   npm ci                              # the report's charting library, copied below
#   docker build -t REGISTRY/memsweep:0.1.0 .
#
# The official Python image, pinned by version and by the digest docker-library/repo-info lists
# for that tag (repos/python/remote/3.11.16-slim-bookworm.md): the Python the project's CI runs.
# amd64 only: hdrhistogram publishes no arm64 wheel and this image has no compiler (pip takes
# wheels only), so the manifests schedule the pods on amd64 nodes.
FROM python:3.11.16-slim-bookworm@sha256:c425d915a89a6dcd3183b1797ad9bd8878caff5a417f6371c8df93c8ea8b727f

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# memsweep runs from its source tree, as in a clone after `pip install -e .`: it reads
# serverless.yml beside runner/ (the usage plan seeding paces to on a url target), inlines
# Chart.js from node_modules into every report, and ships the scenarios.
WORKDIR /opt/memsweep
COPY pyproject.toml README.md serverless.yml ./
COPY node_modules/chart.js/dist/chart.umd.min.js node_modules/chart.js/dist/
COPY node_modules/chartjs-plugin-annotation/dist/chartjs-plugin-annotation.min.js node_modules/chartjs-plugin-annotation/dist/
COPY scenarios/ scenarios/
COPY runner/ runner/
# Runtime dependencies only (pyproject.toml's [project] dependencies, no extras), wheels only.
# Locust requires pytest for its pytest-style locustfiles, which memsweep never loads (importing
# Locust imports none of it): removed, so no test tool is in the image.
RUN pip install --only-binary=:all: -e . \
    && pip uninstall --yes pytest pluggy iniconfig \
    && python -m compileall -q runner

# Nothing is written at run time but the run directory (an emptyDir in the pods) and /tmp.
ENV PYTHONDONTWRITEBYTECODE=1 HOME=/tmp
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin memsweep
# Numeric, so Kubernetes can check runAsNonRoot without a runAsUser.
USER 10001:10001
WORKDIR /work
ENTRYPOINT ["memsweep"]
CMD ["--help"]

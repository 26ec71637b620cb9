# syntax=docker/dockerfile:1.7
# Two images from one file:
#   docker build --target api    -t unlearn-api .      # FastAPI only: no torch, non-root, ~200 MB
#   docker build --target worker -t unlearn-worker .   # torch (CUDA build) + the engine + the toy model
# For a machine without a GPU: --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS wheel
WORKDIR /src
RUN pip install --no-cache-dir "hatchling>=1.25"
COPY pyproject.toml README.md alembic.ini ./
COPY models/toy-shapes models/toy-shapes
COPY app app
COPY worker worker
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .

FROM python:${PYTHON_VERSION}-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system --gid 10001 unlearn \
 && useradd --system --uid 10001 --gid unlearn --create-home --home-dir /home/unlearn unlearn
WORKDIR /home/unlearn
COPY constraints.txt /tmp/constraints.txt

FROM base AS api
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install -c /tmp/constraints.txt /wheels/*.whl
USER unlearn
ENV UNLEARN_HOST=0.0.0.0 UNLEARN_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["unlearn", "serve"]

FROM base AS worker
# g++: on a CPU the worker compiles its erasures (UNLEARN_COMPILE=auto), and torch.compile's
# Inductor builds its kernels with it.
RUN apt-get update && apt-get install -y --no-install-recommends g++ && rm -rf /var/lib/apt/lists/*
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
# torch's CUDA wheels carry the CUDA runtime libraries; the host provides the driver
# (NVIDIA Container Toolkit).
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install -c /tmp/constraints.txt "$(ls /wheels/*.whl)[ml]"
# Real base models (hub ids in UNLEARN_MODELS) are downloaded once into this volume, and compiled
# kernels kept there, so a restarted worker loads them instead of building them again.
ENV HF_HOME=/models/cache TORCHINDUCTOR_CACHE_DIR=/models/cache/inductor
RUN mkdir -p /models/cache && chown -R unlearn:unlearn /models
VOLUME ["/models/cache"]
USER unlearn
CMD ["unlearn", "worker"]

# RemoteCLIP Explorer: the app with its offline default model and the CLI.
#   CPU (default):  docker build -t remoteclip-explorer .
#                   docker run -p 8501:8501 -p 8502:8502 remoteclip-explorer
#   GPU:            docker build --build-arg BASE_IMAGE=nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04 -t remoteclip-explorer:gpu .
#                   docker run --gpus all -p 8501:8501 -p 8502:8502 remoteclip-explorer:gpu
# Publish both ports: 8501 is the app, 8502 its map tile server (the browser fetches full-resolution tiles
# there). A browser on another machine reaches it by name: add -e REMOTECLIP_TILE_URL=http://HOST:8502.
# It installs exactly what the README's `make` targets install: the pins in requirements.txt, then the project
# itself with --no-deps (tests/test_dockerfile.py checks that the two stay the same).
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    STREAMLIT_SERVER_PORT=8501 \
    STREAMLIT_SERVER_ADDRESS=0.0.0.0 \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    REMOTECLIP_TILE_HOST=0.0.0.0 \
    REMOTECLIP_TILE_PORT=8502

# GDAL comes inside the rasterio wheel; a GPU base image (Ubuntu) needs Python and venv first.
RUN if ! command -v python3 >/dev/null 2>&1 || ! python3 -m venv --help >/dev/null 2>&1; then \
        apt-get update && apt-get install -y --no-install-recommends python3 python3-venv python3-pip make \
        && rm -rf /var/lib/apt/lists/*; \
    fi

WORKDIR /opt/remoteclip-explorer
COPY requirements.txt pyproject.toml README.md ./
RUN python3 -m venv /opt/venv && /opt/venv/bin/python -m pip install --upgrade pip \
    && /opt/venv/bin/python -m pip install -r requirements.txt
ENV PATH=/opt/venv/bin:$PATH

COPY remoteclip ./remoteclip
COPY tiles ./tiles
COPY pipelines ./pipelines
COPY app ./app
COPY .streamlit ./.streamlit
RUN python -m pip install --no-deps --no-build-isolation -e . \
    && useradd --create-home --uid 1000 explorer && mkdir -p /data && chown explorer /data
USER explorer

# The chip index lives in /data (mount a volume to keep it); imagery to ingest can be mounted anywhere.
VOLUME ["/data"]
EXPOSE 8501 8502
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"STREAMLIT_SERVER_PORT\"]}/_stcore/health', timeout=4)" || exit 1
CMD ["remoteclip-explorer", "app", "--db", "/data/library"]

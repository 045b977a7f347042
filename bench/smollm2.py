"""SmolLM2-135M-Instruct for the bench: the package's converter (:mod:`verl_rec.devkit.smollm2`),
which the quickstart uses too."""

from verl_rec.devkit.smollm2 import DISTRIBUTION, END_OF_TURN, convert, gguf_path

__all__ = ["DISTRIBUTION", "END_OF_TURN", "convert", "gguf_path"]

"""A tiny random Qwen2 chat model built locally, for CPU runs of the trainer.

Tests and smoke runs need a model that ``AutoTokenizer``/``AutoModelForCausalLM``
load offline and that veRL treats like a real chat model (ChatML template, EOS =
``<|im_end|>``), but nothing may be downloaded. So the tokenizer is a byte-level BPE
trained here on the bundled text below (plus any text a caller adds, so that a task's words
become whole tokens), and the model is a randomly initialised ``Qwen2ForCausalLM`` of ~100k
parameters by default. Deterministic for a given seed.

CLI: ``python -m verl_rec.devkit.tiny_model OUT_DIR [--vocab-size N] [--seed S]``
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

IM_START, IM_END, END_OF_TEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
SPECIAL_TOKENS = [END_OF_TEXT, IM_START, IM_END]

# Qwen-style ChatML: optional system message, then turns, then the assistant header.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

_CORPUS = """\
A user looks for a product and types a short query into the search box. The search engine
ranks documents by how well they match the query, and the user reads the first few results.
A better query names the product type, the brand, the size and the colour; a worse query
repeats vague words like good, nice or best. Rewrite the request as a search query.
The retriever scores each document with BM25 or with a dense embedding model. The reward is
the normalized discounted cumulative gain of the relevant items at rank ten, or the recall
at rank one hundred. Queries that place the relevant item first earn the highest reward.
<think> The user wants running shoes for trail races, light and waterproof. </think>
<answer> lightweight waterproof trail running shoes </answer>
<think> The question asks which enzyme breaks down starch in saliva. </think>
<answer> salivary amylase starch digestion enzyme </answer>
Find books about the history of navigation at sea, maps, compasses and the longitude problem.
Search for a recipe with lentils, tomatoes, cumin and coriander that cooks in thirty minutes.
Which papers study retrieval augmented generation for open domain question answering?
Recommend a quiet mechanical keyboard with brown switches and a detachable USB-C cable.
Numbers and codes also appear in queries: 42, 2024, 3.5mm, USB-C, 4K, A4, 100ml, 16GB.
The system message sets the task; the assistant answers inside the answer tags.
"""


def _train_tokenizer(vocab_size: int, extra_corpus: Sequence[str] = ()):
    """Byte-level BPE over the bundled corpus (and ``extra_corpus``), wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = _CORPUS.splitlines(keepends=True) + [line for text in extra_corpus for line in text.splitlines(keepends=True)]
    bpe.train_from_iterator(lines, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token=IM_END,
        pad_token=END_OF_TEXT,
        unk_token=None,
        additional_special_tokens=[IM_START],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _random_qwen2(tokenizer, seed: int, hidden_size: int = 64, num_layers: int = 2):
    """~100k parameters by default: 2 layers, hidden 64, 4 query / 2 kv heads, tied embeddings."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    eos_id = tokenizer.convert_tokens_to_ids(IM_END)
    pad_id = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        dtype="float32",
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=eos_id, pad_token_id=pad_id)
    return model


def build_tiny_model(out_dir: str | Path, vocab_size: int = 512, seed: int = 0, extra_corpus: Sequence[str] = (),
                     hidden_size: int = 64, num_layers: int = 2) -> Path:
    """Write tokenizer + random Qwen2 to ``out_dir`` (save_pretrained layout); return the path.

    ``extra_corpus``: more text for the tokenizer to learn merges from, so that text a run
    repeats (the agent's prompts and tool-call syntax, :func:`verl_rec.devkit.agent_warmup.agent_corpus`;
    a task's words, which then become single tokens) costs fewer tokens; give a larger
    ``vocab_size`` with it.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer(vocab_size, extra_corpus)
    model = _random_qwen2(tokenizer, seed, hidden_size, num_layers)
    tokenizer.save_pretrained(out)
    model.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    (out / "tiny_model.json").write_text(json.dumps({"params": n_params, "vocab_size": len(tokenizer), "seed": seed}))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--vocab-size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = build_tiny_model(args.out_dir, vocab_size=args.vocab_size, seed=args.seed)
    print(path / "tiny_model.json", (path / "tiny_model.json").read_text())


if __name__ == "__main__":
    main()

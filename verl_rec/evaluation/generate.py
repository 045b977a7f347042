"""Generation of the policy's outputs for evaluation: vLLM when importable, else transformers.

Prompts are the chat messages of a prompt format, rendered with the model's own chat
template and ``add_generation_prompt``, then the format's pre-filled assistant turn if it has
one (:meth:`~verl_rec.tasks.formats.PromptFormat.render`: exactly what the rollout renders in
training), and decoded greedily: the paper's evaluation setting (``val_kwargs.do_sample: false``).
The outputs are the continuation only (without the pre-fill). :class:`Sampling` draws several
outputs per prompt instead (temperature, top-p, seed): what a policy's sampled behaviour looks
like, next to its greedy answer.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from verl_rec.tasks.formats import TASK_FORMATS, PromptFormat, get_format
from verl_rec.tasks.records import TaskRecord

ENGINES = ("auto", "vllm", "transformers")


def vllm_available() -> bool:
    try:
        import vllm  # noqa: F401
    except Exception:  # a broken CUDA install raises more than ImportError
        return False
    return True


Formats = Sequence[PromptFormat] | None


@dataclass(frozen=True)
class Sampling:
    """``n`` sampled outputs per prompt; the recipes' rollout uses temperature 0.6, top-p 0.95."""

    n: int = 4
    temperature: float = 0.6
    top_p: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n < 1 or self.temperature <= 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"sampling needs n >= 1, temperature > 0 and 0 < top_p <= 1, got {self}")


def render_prompts(tokenizer, conversations: Sequence[list[dict[str, str]]], formats: Formats = None) -> list[str]:
    """The prompt texts: each conversation rendered by its format (chat template + pre-fill), or
    by the chat template alone when no formats are given."""
    if formats is None:
        return [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
    if len(formats) != len(conversations):
        raise ValueError(f"{len(conversations)} conversations but {len(formats)} formats")
    return [fmt.render(tokenizer, c) for c, fmt in zip(conversations, formats)]


def _generate_vllm(model_path: str, conversations: Sequence[list[dict[str, str]]], max_new_tokens: int,
                   max_model_len: int | None, formats: Formats = None,
                   sampling: Sampling | None = None) -> list[list[str]]:
    from vllm import LLM, SamplingParams

    llm = LLM(model=model_path, max_model_len=max_model_len, trust_remote_code=False)
    prompts = render_prompts(llm.get_tokenizer(), conversations, formats)
    params = (SamplingParams(temperature=0.0, max_tokens=max_new_tokens) if sampling is None else
              SamplingParams(n=sampling.n, temperature=sampling.temperature, top_p=sampling.top_p,
                             seed=sampling.seed, max_tokens=max_new_tokens))
    results = llm.generate(prompts, params)
    return [[o.text for o in r.outputs] for r in results]


def _generate_transformers(model_path: str, conversations: Sequence[list[dict[str, str]]], max_new_tokens: int,
                           batch_size: int, formats: Formats = None,
                           sampling: Sampling | None = None) -> list[list[str]]:
    import torch
    from tqdm import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(model_path, padding_side="left")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(device).eval()
    prompts = render_prompts(tokenizer, conversations, formats)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # similar lengths share a batch: less padding
    outputs: list[list[str]] = [[] for _ in prompts]
    n = sampling.n if sampling else 1
    options = ({"do_sample": False} if sampling is None else
               {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": 0,
                "num_return_sequences": n})
    if sampling is not None:
        torch.manual_seed(sampling.seed)
    for start in tqdm(range(0, len(order), batch_size), desc="generate", unit="batch", file=sys.stderr, mininterval=2):
        index = order[start:start + batch_size]
        batch = tokenizer([prompts[i] for i in index], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        with torch.no_grad():
            generated = model.generate(**batch, **options, max_new_tokens=max_new_tokens,
                                       pad_token_id=tokenizer.pad_token_id)
        new_tokens = generated[:, batch["input_ids"].shape[1]:]
        texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        for row, i in enumerate(index):  # generate() returns each prompt's n sequences together
            outputs[i] = texts[row * n:(row + 1) * n]
    return outputs


def generate(model_path: str, conversations: Sequence[list[dict[str, str]]], max_new_tokens: int = 512,
             batch_size: int = 16, engine: str = "auto", max_model_len: int | None = None,
             formats: Formats = None) -> tuple[list[str], str]:
    """Greedy outputs for every conversation, and the engine that produced them. ``formats``
    (one per conversation) add each format's pre-filled assistant turn to its prompt."""
    outputs, used = generate_samples(model_path, conversations, None, max_new_tokens, batch_size, engine,
                                     max_model_len, formats)
    return [texts[0] for texts in outputs], used


def generate_samples(model_path: str, conversations: Sequence[list[dict[str, str]]], sampling: Sampling | None,
                     max_new_tokens: int = 512, batch_size: int = 16, engine: str = "auto",
                     max_model_len: int | None = None, formats: Formats = None) -> tuple[list[list[str]], str]:
    """``sampling.n`` outputs per conversation (one greedy output when ``sampling`` is None), and the engine."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    use_vllm = engine == "vllm" or (engine == "auto" and vllm_available())
    if use_vllm:
        return _generate_vllm(model_path, conversations, max_new_tokens, max_model_len, formats, sampling), "vllm"
    return (_generate_transformers(model_path, conversations, max_new_tokens, batch_size, formats, sampling),
            "transformers")


def model_outputs(records: Sequence[TaskRecord], model_path: str, prompt_format: str | None, max_new_tokens: int,
                  batch_size: int, engine: str, sampling: Sampling | None = None) -> dict[str, str]:
    """One greedy output per record with the model at ``model_path`` (prompt + pre-fill), keyed by
    record id; with ``sampling``, its ``n`` samples per record, keyed ``<record_id>#<k>``
    (:func:`~verl_rec.evaluation.systems.sampled_records`)."""
    formats = [get_format(prompt_format or TASK_FORMATS[r.task]) for r in records]
    conversations = [fmt.messages(r) for fmt, r in zip(formats, records)]
    started = time.perf_counter()
    texts, used = generate_samples(model_path, conversations, sampling, max_new_tokens=max_new_tokens,
                                   batch_size=batch_size, engine=engine, formats=formats)
    print(f"generated {sum(map(len, texts))} outputs with {used} in {time.perf_counter() - started:.1f}s",
          file=sys.stderr)
    if sampling is None:
        return {r.record_id: t[0] for r, t in zip(records, texts)}
    return {f"{r.record_id}#{k}": text for r, t in zip(records, texts) for k, text in enumerate(t)}

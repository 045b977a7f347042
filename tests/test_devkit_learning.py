"""The dev kit's learning parts without the trainer: the format warm-up's answers carry no
retrieval knowledge and parse as the reward parses them, the vocabulary task retrieves as it
claims, and the CPU sizes are one consistent override list."""

from __future__ import annotations

import random

import pytest

from verl_rec.devkit.cpu_sizes import CpuSizes, engine_overrides, recipe_cpu_overrides
from verl_rec.devkit.format_warmup import random_answer, response_text, rollout_prompt_ids
from verl_rec.devkit.vocab_task import DECOYS, MENU_SIZE, TOPICS, write_vocab_task
from verl_rec.reward.parsing import parse_output
from verl_rec.tasks.formats import FormatSpec, get_format
from verl_rec.tasks.records import Candidate, TaskRecord

SEARCH = TaskRecord("r1", "s", "search", {"d1": 1.0}, query="red trail running shoes")
SEQREC = TaskRecord("r2", "s", "seqrec", {"d1": 1.0}, history=("Rose Face Serum", "Clay Mask"))
RERANK = TaskRecord("r3", "s", "rerank", {"Item_2": 1.0},
                    candidates=tuple(Candidate(f"Item_{i}", f"text {i}") for i in range(1, 6)))


def test_random_answers_come_from_the_prompt_or_the_given_words_uniformly():
    rng = random.Random(0)
    fmt = get_format("bm25_query")
    answers = [random_answer(SEARCH, fmt, rng, max_words=1) for _ in range(400)]
    assert set(answers) == set(SEARCH.query.split())  # every word, and only words of the query
    assert min(answers.count(w) for w in set(answers)) > 60  # ~100 each: uniform, not informed
    multi = [random_answer(SEARCH, fmt, rng) for _ in range(50)]
    assert all(set(a.split()) <= set(SEARCH.query.split()) for a in multi) and len({len(a.split()) for a in multi}) > 1
    assert set(random_answer(SEQREC, get_format("seqrec_query"), rng).split()) <= {"Rose", "Face", "Serum", "Clay", "Mask"}
    assert random_answer(SEARCH, fmt, rng, max_words=1, answer_words=("zanuk", "balto")) in {"zanuk", "balto"}
    orders = {tuple(random_answer(RERANK, get_format("rerank"), rng)) for _ in range(30)}
    assert all(sorted(o) == sorted(c.id for c in RERANK.candidates) for o in orders) and len(orders) > 5


@pytest.mark.parametrize("name", ["bm25_query", "seqrec_query", "rerank"])
def test_warmup_responses_pass_the_reward_parser(name):
    fmt = get_format(name)
    record = {"bm25_query": SEARCH, "seqrec_query": SEQREC, "rerank": RERANK}[name]
    answer = random_answer(record, fmt, random.Random(1))
    parsed = parse_output(response_text(fmt, answer) + "<|im_end|>", fmt.spec)
    assert parsed.ok and parsed.answer == answer


def test_a_prefilled_think_is_not_written_again():
    paper = get_format("paper_sparse")
    assert paper.think_prefilled
    text = response_text(paper, "red shoes")
    assert not text.startswith("<think>") and response_text(get_format("bm25_query"), "red shoes").startswith("<think>")
    assert parse_output(text, FormatSpec(think_prefilled=True)).answer == "red shoes"


def test_prompt_ids_are_the_chat_template_then_the_prefill(tmp_path):
    from transformers import AutoTokenizer

    from verl_rec.devkit.tiny_model import build_tiny_model

    tokenizer = AutoTokenizer.from_pretrained(build_tiny_model(tmp_path / "tiny"))
    plain = get_format("bm25_query")
    templated = tokenizer.apply_chat_template(plain.messages(SEARCH), add_generation_prompt=True, tokenize=False)
    assert rollout_prompt_ids(tokenizer, plain, SEARCH) == tokenizer(templated)["input_ids"]
    paper = get_format("paper_sparse")
    assert paper.assistant_prefill
    templated = tokenizer.apply_chat_template(paper.messages(SEARCH), add_generation_prompt=True, tokenize=False)
    assert rollout_prompt_ids(tokenizer, paper, SEARCH) == tokenizer(templated + paper.assistant_prefill)["input_ids"]


@pytest.mark.parametrize("n_topics", [1, 4])
def test_vocab_task_retrieves_as_documented(tmp_path, n_topics):
    from verl_rec.metrics import evaluate_positions, first_positions
    from verl_rec.retrieval.bm25s.build import build_bm25s_index
    from verl_rec.retrieval.bm25s.retriever import Bm25sRetriever
    from verl_rec.tasks.record_files import read_records

    task = write_vocab_task(tmp_path / "task", n_topics=n_topics)
    assert sorted(task.menu) == sorted([w for _, w in TOPICS[:n_topics]] + list(DECOYS[: MENU_SIZE - n_topics]))
    retriever = Bm25sRetriever(build_bm25s_index(task.corpus, tmp_path / "index", progress=False))
    right = dict(TOPICS)
    train, val = read_records(task.train), read_records(task.val)
    assert not {r.query for r in val} & {r.query for r in train}

    def ndcg(query: str, qrels: dict) -> float:
        ids = list(retriever.search([query], 10)[0].ids)
        return evaluate_positions(first_positions(ids, qrels, 10), qrels, ["ndcg@10"])["ndcg@10"]

    for record in val:
        cue = next(w for w in record.query.split() if w in right)
        assert ndcg(right[cue], record.qrels) == pytest.approx(1.0)
        assert ndcg(record.query, record.qrels) == 0.0  # the user's words are not the catalog's
        assert all(ndcg(w, record.qrels) == 0.0 for w in task.menu if w != right[cue])
    retriever.close()


def test_cpu_sizes_are_one_consistent_override_list():
    overrides = recipe_cpu_overrides("/m", "/o", "lucene", CpuSizes(train_batch_size=4, rollout_n=8, steps=10, test_freq=5))
    keys = [o.split("=", 1)[0] for o in overrides]
    assert len(keys) == len(set(keys))
    assert "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=32" in overrides
    assert "trainer.test_freq=5" in overrides and "trainer.total_training_steps=10" in overrides
    assert "trainer.test_freq=2" in recipe_cpu_overrides("/m", "/o", None)  # validate after the last step
    assert engine_overrides(None) == [] and engine_overrides("lucene")[0].endswith("heap=512m")


def test_validation_mean_weights_each_data_source_by_its_queries(tmp_path):
    import pandas as pd

    from verl_rec.devkit.val_metrics import data_source_counts, validation_mean

    pd.DataFrame({"data_source": ["a", "a", "a", "b", "c"]}).to_parquet(tmp_path / "val.parquet")
    counts = data_source_counts(tmp_path / "val.parquet", limit=4)  # veRL's val_max_samples: the first 4 rows
    assert counts == {"a": 3, "b": 1}
    step = {"val-aux/a/ndcg@10/mean@1": 0.2, "val-aux/b/ndcg@10/mean@1": 1.0, "val-core/a/reward/mean@1": 0.3}
    assert validation_mean(step, "/ndcg@10/mean@1", counts) == pytest.approx(0.4)  # (3 x 0.2 + 1.0) / 4
    assert validation_mean(step, "/ndcg@10/mean@1") == pytest.approx(0.6)  # over sources
    assert validation_mean(step, "/reward/mean@1", counts) == pytest.approx(0.3)
    assert validation_mean(step, "/recall@10/mean@1", counts) is None
    with pytest.raises(KeyError, match="lack"):
        validation_mean(step, "/ndcg@10/mean@1", {"a": 3})

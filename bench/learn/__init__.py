"""``python -m bench.learn``: a real instruction LLM, trained by our recipe on this CPU, against the user's own words.

SmolLM2-135M-Instruct (``bench.smollm2``) trains with stock ``main_ppo`` on the ``vaswani_bm25``
recipe: literature search on the Vaswani test collection (11,429 abstracts, BM25 by Lucene),
where the user's text is a verbose request around one of the collection's queries
(:mod:`verl_rec.builders.requests`). The builder splits the 93 queries into 53 train and 40
held-out queries (seed 0) before anything is scored; validation is on the held-out ones only.

Stages, each measured and logged under ``--work``:

1. data: the builder (``verl_rec.data_preprocess.trec``) and the Lucene index;
2. the warm-up (:mod:`verl_rec.devkit.own_query_warmup`): the base model's own zero-shot
   queries, drawn with a plain prompt, taught inside the answer format; the format, not an
   answer;
3. GRPO through stock ``main_ppo``: greedy validation before training and every
   ``--val-every`` steps, an HF checkpoint at each validation (the last two kept);
4. ``python -m verl_rec.evaluate`` on the held-out queries: the raw request, the untrained,
   warmed-up and trained models, greedy and sampled (``--samples`` per query);
5. the report: paired bootstrap intervals over queries, wins and losses, example rewrites.

Writes ``<out>/learning.json``, ``<out>/learning.png`` and ``<out>/learning.md`` (the tables).

Modules: :mod:`.settings` (sizes and names), :mod:`.training` (data, warm-up, GRPO),
:mod:`.evaluation` (the evaluate CLI and the terse-query reference), :mod:`.statistics`
(bootstrap intervals), :mod:`.report` (learning.json, the tables, the plot, the archive).
"""

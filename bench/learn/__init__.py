"""``python -m bench.learn``: does the learning generalize to unseen phrasings, across seeds, and does searching help?

SmolLM2-135M-Instruct (the quickstart's model and task: the bundled Vaswani collection, 11,429
abstracts, BM25 by Lucene) trains with stock ``main_ppo`` as two systems on one budget:

* ``rewrite``: the ``quickstart_vaswani`` recipe, one query per request (pre-filled answer);
* ``agent``: the ``quickstart_vaswani_agent`` recipe, the multi-turn search agent: up to two
  searches, each showing the top 5 titles, then the final query, scored the same way.

Each system trains once per seed (``--seeds``: the data order and the rollout sampler), the
same steps, batch and rollouts. Every run validates greedily, before training and every
``--val-every`` steps, on the 40 held-out queries twice: in the training phrasings
(``test.parquet``, data source ``vaswani``) and in 8 phrasings never used in training
(``test_unseen.parquet``, ``vaswani_unseen``; written before anything was scored and recorded in
the builder's manifest). veRL dumps every validated answer with its NDCG
(``trainer.validation_data_dir``); the report pairs them per query with the raw request and the
collection's terse query, and keeps the final HF checkpoint of each run under ``--work``.

Writes ``<out>/learning.json``, ``learning.md`` (the tables), ``learning.png`` (the curves, one row
per system, one colour per seed) and ``learning_runs/`` (each run's log, run.json and dumps).

Modules: :mod:`.settings` (names and schedule), :mod:`.runs` (one ``main_ppo`` run),
:mod:`.scoring` (the references and the dumps, per query), :mod:`.report` (learning.json),
:mod:`.tables` and :mod:`.plot`.
"""

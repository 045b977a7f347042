"""Rank metrics of a ranked id list against ``{id: gain}`` qrels, with trec_eval's conventions.

One metric per module, each citing its formula (:mod:`.ndcg`, :mod:`.recall`, :mod:`.mrr`);
the shared kernels that find where the relevant ids rank live in :mod:`.positions`, the
``<name>@<k>`` specs in :mod:`.specs`, several metrics at once in :mod:`.evaluate` and the
list-at-a-time helpers in :mod:`.batch`.

Conventions (the tests check every metric against trec_eval and ranx):

* **Linear gain**; graded labels are used as given (e.g. ESCI E=3, S=2, C=1, I=0), binary
  qrels are gain 1. A document is **relevant** when its gain is > 0; ids absent from the
  qrels have gain 0. No relevant document: every metric is 0.
* A ranking's **repeated ids count at their first position only**; later copies are removed
  before the cut at k (a re-ranked list that repeats an item cannot score twice).

The public per-ranking functions accept qrels in any in-memory form (:func:`verl_rec.qrels.as_qrels`);
:func:`evaluate_positions`, on the reward's path, takes qrels already parsed once at the edge.
"""

from verl_rec.metrics.batch import mrr_at_k_batch, ndcg_at_k_batch, recall_at_k_batch
from verl_rec.metrics.evaluate import evaluate, evaluate_positions
from verl_rec.metrics.mrr import mrr_at_k
from verl_rec.metrics.ndcg import ndcg_at_k, ndcg_from_positions
from verl_rec.metrics.positions import first_positions, hit_positions
from verl_rec.metrics.recall import recall_at_k
from verl_rec.metrics.specs import METRICS, MetricFn, parse_metric
from verl_rec.qrels import Qrels, as_qrels

__all__ = [
    "METRICS",
    "MetricFn",
    "Qrels",
    "as_qrels",
    "evaluate",
    "evaluate_positions",
    "first_positions",
    "hit_positions",
    "mrr_at_k",
    "mrr_at_k_batch",
    "ndcg_at_k",
    "ndcg_at_k_batch",
    "ndcg_from_positions",
    "parse_metric",
    "recall_at_k",
    "recall_at_k_batch",
]

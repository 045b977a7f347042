"""Replays of veRL 0.9.1's worker-time checks, each read from veRL's own config objects.

Every check names the veRL code whose rule it replays; ``tests/test_preflight_faithful.py``
feeds that code the same numbers and expects the same verdict, so a veRL release that moves a
rule fails a test instead of a GPU run. Sizes: ``world`` is every training GPU
(``n_gpus_per_node * nnodes``, one hybrid actor/rollout/ref worker per GPU).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from verl_rec.preflight.compose import compose_for_gpus, declared_sizes
from verl_rec.preflight.report import FAIL, INFO, OK, WARN, Finding, Report

ACTOR, ROLLOUT, REF = "actor_rollout_ref.actor", "actor_rollout_ref.rollout", "actor_rollout_ref.ref"


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def largest_divisor_at_most(n: int, limit: int) -> int:
    """The largest divisor of ``n`` that is <= ``limit`` (a micro-batch or TP size that fits)."""
    return max(d for d in divisors(n) if d <= max(1, limit))


@dataclass(frozen=True)
class RunShape:
    """The numbers veRL's workers compute from a config, read from veRL's own config dataclasses."""

    world: int
    gpus_per_node: int
    nodes: int
    train_batch_size: int
    rollout_n: int
    mini_batch_size: int
    actor_micro: int | None
    rollout_micro: int | None
    ref_micro: int | None
    dynamic_bsz: bool
    sp_size: int
    tp: int
    rollout_dp: int
    pp: int
    use_ref: bool
    prompt_length: int
    response_length: int
    max_model_len: int | None

    @property
    def fsdp_dp(self) -> int:
        """Data-parallel ranks of the FSDP engine: the world over the Ulysses sequence-parallel size."""
        return max(1, self.world // self.sp_size)

    @property
    def mini_rows(self) -> int:
        """Rows of one actor mini-batch (veRL multiplies ppo_mini_batch_size by rollout.n)."""
        return self.mini_batch_size * self.rollout_n

    @property
    def batch_multiple(self) -> int:
        """What the v1 trainer pads a step's rows to (``_get_required_batch_multiple``, no critic)."""
        return math.lcm(self.fsdp_dp, self.mini_rows)

    @property
    def step_rows(self) -> int:
        rows = self.train_batch_size * self.rollout_n
        return math.ceil(rows / self.batch_multiple) * self.batch_multiple

    @property
    def step_rows_per_gpu(self) -> int:
        return self.step_rows // self.fsdp_dp


def run_shape(cfg: DictConfig) -> RunShape:
    """The shape veRL's workers will see, through ``omega_conf_to_dataclass`` as the workers build it."""
    from verl.trainer.main_ppo import need_reference_policy
    from verl.utils.config import omega_conf_to_dataclass

    actor = omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)
    rollout = omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout)
    ref = cfg.actor_rollout_ref.ref
    return RunShape(
        world=int(cfg.trainer.n_gpus_per_node) * int(cfg.trainer.nnodes),
        gpus_per_node=int(cfg.trainer.n_gpus_per_node), nodes=int(cfg.trainer.nnodes),
        train_batch_size=int(cfg.data.train_batch_size), rollout_n=int(rollout.n),
        mini_batch_size=int(actor.ppo_mini_batch_size), actor_micro=actor.ppo_micro_batch_size_per_gpu,
        rollout_micro=rollout.log_prob_micro_batch_size_per_gpu, ref_micro=ref.get("log_prob_micro_batch_size_per_gpu"),
        dynamic_bsz=bool(actor.use_dynamic_bsz), sp_size=int(actor.ulysses_sequence_parallel_size or 1),
        tp=int(rollout.tensor_model_parallel_size), rollout_dp=int(rollout.data_parallel_size),
        pp=int(rollout.pipeline_model_parallel_size), use_ref=bool(need_reference_policy(cfg)),
        prompt_length=int(rollout.prompt_length), response_length=int(rollout.response_length),
        max_model_len=rollout.max_model_len,
    )


# -- the checks ------------------------------------------------------------------------------

def check_verl_startup(cfg: DictConfig, shape: RunShape) -> list[Finding]:
    """veRL's own start-up validation (``verl.utils.config.validate_config``), called as main_ppo calls it."""
    from verl.trainer.main_ppo import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    try:  # it prints a success line and warns that GRPO has no critic: neither is a finding
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            validate_config(config=cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    except (AssertionError, ValueError) as exc:
        return [Finding("veRL start-up validation", FAIL, f"validate_config refuses the config: {exc}")]
    return [Finding("veRL start-up validation", OK, "validate_config passes")]


def check_rollout_world(cfg: DictConfig, shape: RunShape) -> list[Finding]:
    """``engine_workers.ActorRolloutRefWorker.init_model``: world % (tp*dp*pp) == 0, and
    ``llm_server.LLMServerManager``: num_replicas = world // (tp*dp*pp) >= 1."""
    replica = shape.tp * shape.rollout_dp * shape.pp
    replicas = shape.world // replica
    numbers = f"tp {shape.tp} x dp {shape.rollout_dp} x pp {shape.pp} = {replica} GPUs per rollout replica"
    if shape.world % replica or replicas < 1:
        good_tp = largest_divisor_at_most(shape.world, shape.tp)
        why = ("0 rollout replicas would start" if replicas < 1
               else f"the world of {shape.world} GPUs does not split into replicas of {replica}")
        return [Finding("rollout parallelism", FAIL, f"{numbers} on {shape.world} GPU(s): {why}",
                        key=f"{ROLLOUT}.tensor_model_parallel_size",
                        fix=f"{ROLLOUT}.tensor_model_parallel_size={good_tp}"
                            + (" (with data_parallel_size=1, pipeline_model_parallel_size=1)" if replica != shape.tp else ""))]
    return [Finding("rollout parallelism", OK, f"{numbers}: {replicas} replica(s) on {shape.world} GPU(s)")]


def check_actor_mini_batch(cfg: DictConfig, shape: RunShape) -> list[Finding]:
    """``TrainingWorker.train_mini_batch``: mini_batch_size (x rollout.n) % dp == 0, and
    ``engine.utils.prepare_micro_batches``: rows of a GPU's mini-batch % micro == 0."""
    key = f"{ACTOR}.ppo_mini_batch_size"
    if shape.mini_rows % shape.fsdp_dp:
        good = next((m for m in range(shape.mini_batch_size, shape.train_batch_size + 1)
                     if shape.train_batch_size % m == 0 and (m * shape.rollout_n) % shape.fsdp_dp == 0), None)
        return [Finding("actor mini-batch split", FAIL,
                        f"{shape.mini_batch_size} prompts x n {shape.rollout_n} = {shape.mini_rows} rows do not split "
                        f"over {shape.fsdp_dp} data-parallel GPU(s)", key=key,
                        fix=f"{key}={good}" if good else f"data.train_batch_size and {key} with "
                            f"{key} x {shape.rollout_n} a multiple of {shape.fsdp_dp}")]
    per_gpu = shape.mini_rows // shape.fsdp_dp
    if shape.dynamic_bsz:
        return [Finding("actor micro-batch split", INFO, f"{per_gpu} rows per GPU per mini-batch; "
                        "use_dynamic_bsz packs micro-batches by tokens (no divisibility rule)")]
    return [_micro_finding("actor update micro-batch", f"{ACTOR}.ppo_micro_batch_size_per_gpu", shape.actor_micro,
                           per_gpu, f"{shape.mini_rows} rows per mini-batch / {shape.fsdp_dp} GPU(s)")]


def check_log_prob_micro_batches(cfg: DictConfig, shape: RunShape) -> list[Finding]:
    """``prepare_micro_batches`` for the rollout (old) log-prob pass and the reference pass: a GPU's
    share of the step's rows (padded by the v1 trainer to lcm(dp, mini rows)) % micro == 0."""
    if shape.dynamic_bsz:
        return [Finding("log-prob micro-batches", INFO, "use_dynamic_bsz packs micro-batches by tokens")]
    rows = shape.step_rows_per_gpu
    how = f"{shape.step_rows} rows per step / {shape.fsdp_dp} GPU(s)"
    found = [_micro_finding("rollout log-prob micro-batch", f"{ROLLOUT}.log_prob_micro_batch_size_per_gpu",
                            shape.rollout_micro, rows, how)]
    if shape.use_ref:
        found.append(_micro_finding("reference log-prob micro-batch", f"{REF}.log_prob_micro_batch_size_per_gpu",
                                    shape.ref_micro, rows, how))
    return found


def _micro_finding(check: str, key: str, micro: int | None, rows: int, how: str) -> Finding:
    if micro is None:
        return Finding(check, FAIL, f"{key} is not set", key=key, fix=f"{key}={largest_divisor_at_most(rows, 16)}")
    if rows % micro:
        return Finding(check, FAIL, f"{how} = {rows} rows per GPU, and {rows} % {micro} = {rows % micro}",
                       key=key, fix=f"{key}={largest_divisor_at_most(rows, micro)} (any divisor of {rows})")
    return Finding(check, OK, f"{how} = {rows} rows per GPU = {rows // micro} micro-batch(es) of {micro}")


def check_model_length(cfg: DictConfig, shape: RunShape) -> list[Finding]:
    """vLLM server ``_validate_configs``: max_model_len defaults to the model's max_position_embeddings;
    a prompt of prompt_length plus response_length tokens must fit in it."""
    need = shape.prompt_length + shape.response_length
    limit, source = shape.max_model_len, f"{ROLLOUT}.max_model_len"
    if limit is None:
        limit, source = _max_position_embeddings(str(cfg.actor_rollout_ref.model.path)), "the model's max_position_embeddings"
    if limit is None:
        return [Finding("prompt + response length", INFO,
                        f"{shape.prompt_length} + {shape.response_length} = {need} tokens; max_model_len is unset, so vLLM "
                        "uses the model's max_position_embeddings (the model is not on this machine to read it)")]
    if need > limit:
        return [Finding("prompt + response length", FAIL,
                        f"{shape.prompt_length} + {shape.response_length} = {need} tokens > {source} {limit}",
                        key="data.max_response_length",
                        fix=f"data.max_response_length={max(1, limit - shape.prompt_length)} or {source} >= {need}")]
    return [Finding("prompt + response length", OK, f"{need} tokens <= {source} {limit}")]


def _max_position_embeddings(model_path: str) -> int | None:
    config = Path(os.path.expanduser(model_path)) / "config.json"
    if not config.is_file():
        return None
    values = json.loads(config.read_text(encoding="utf-8"))
    values = values.get("text_config", values)
    return values.get("max_position_embeddings")


def service_config(cfg: DictConfig):
    """The recipe's retrieval service config (None: the recipe has no retriever)."""
    from verl_rec.reward.reward_kwargs import RewardSettings

    return RewardSettings.from_mapping(OmegaConf.to_container(cfg.reward.reward_kwargs, resolve=True)).retrieval


def check_service_gpus(cfg: DictConfig, shape: RunShape, node_gpus: int) -> list[Finding]:
    """The retrieval service reserves ``reserved_gpus(config)`` GPUs on every node, beside veRL's pool."""
    from verl_rec.retrieval.service.placement import reserved_gpus

    service = service_config(cfg)
    if service is None:
        return [Finding("retrieval service GPUs", OK, "no retrieval service (the recipe has no retriever)")]
    gpus = reserved_gpus(service)
    need = shape.gpus_per_node + math.ceil(gpus)
    if need > node_gpus:
        left = node_gpus - math.ceil(gpus)
        fitting = next((g for g in range(left, 0, -1) if _shape_fits(cfg, dataclasses.replace(
            shape, gpus_per_node=g, world=g * shape.nodes))), None)
        pool = (f"trainer.n_gpus_per_node={fitting} (the most of the {left} left whose split veRL accepts), or "
                if fitting else "")
        return [Finding("retrieval service GPUs", FAIL,
                        f"the {service.backend} service reserves {gpus:g} GPU per node and veRL's pool takes "
                        f"{shape.gpus_per_node}: {need} > the node's {node_gpus}; the service would wait forever",
                        key="trainer.n_gpus_per_node",
                        fix=f"{pool}run the engine on the CPU "
                            "(reward.reward_kwargs.retrieval.backend_options.device=cpu, use_gpu=false)")]
    return [Finding("retrieval service GPUs", OK,
                    f"the {service.backend} service reserves {gpus:g} GPU per node; veRL's pool takes {shape.gpus_per_node}")]


def _shape_fits(cfg: DictConfig, shape: RunShape) -> bool:
    """Whether the batch and parallelism checks pass for ``shape`` (another pool size, say)."""
    checks = (check_rollout_world, check_actor_mini_batch, check_log_prob_micro_batches)
    return not any(f.status == FAIL for check in checks for f in check(cfg, shape))


def check_index_path(cfg: DictConfig, shape: RunShape) -> list[Finding]:
    """Every node opens the index at the same path: a URI is an external engine, a folder must be on every node."""
    from verl_rec.retrieval.base import is_engine_uri

    service = service_config(cfg)
    if service is None:
        return []
    location = str(service.index_path)
    if is_engine_uri(location):
        return [Finding("index path", INFO, f"{location} is an external engine ({service.backend}): every node reaches "
                        "it over the network; nothing to copy")]
    path = Path(location)
    where = "on every node" if shape.nodes > 1 else "on the node"
    if not path.is_absolute() and shape.nodes > 1:
        return [Finding("index path", WARN, f"{location} is relative: each node resolves it in its own working "
                        "directory", key="reward.reward_kwargs.retrieval.index_path",
                        fix="an absolute path on shared storage (or VERL_REC_DATA set to one on every node)")]
    if not path.exists():
        return [Finding("index path", WARN, f"{path.resolve()} is not on this machine: it must exist {where} "
                        "before the first reward", key="reward.reward_kwargs.retrieval.index_path",
                        fix="build it (python -m verl_rec.data_preprocess.build_index) or copy it there")]
    return [Finding("index path", OK, f"{path.resolve()} exists here ({_size_text(_disk_bytes(path))}); it must "
                    f"exist {where}")]


def _disk_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _size_text(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


# -- needs -----------------------------------------------------------------------------------

def needs(cfg: DictConfig, shape: RunShape) -> dict[str, str]:
    """What the run takes from the cluster, for the report."""
    from verl_rec.retrieval.base import is_engine_uri
    from verl_rec.retrieval.service.placement import reserved_gpus

    seq = shape.prompt_length + shape.response_length
    out = {
        "GPUs per pool": f"global_pool (actor + rollout + ref, colocated): {shape.gpus_per_node} per node x {shape.nodes}",
        "rollout replicas": f"{max(0, shape.world // (shape.tp * shape.rollout_dp * shape.pp))} of tp {shape.tp}",
        "rows per step": f"{shape.step_rows} ({shape.train_batch_size} prompts x n {shape.rollout_n}), "
                         f"{shape.step_rows_per_gpu} per GPU, each up to {seq} tokens",
    }
    if not shape.dynamic_bsz:
        out["rows per GPU per micro-batch"] = (f"actor {shape.actor_micro}, rollout log-prob {shape.rollout_micro}"
                                                + (f", ref {shape.ref_micro}" if shape.use_ref else ""))
    service = service_config(cfg)
    if service is not None:
        location = str(service.index_path)
        if is_engine_uri(location):
            size = "external engine (its own machines)"
        else:
            path = Path(location)
            size = f"index {_size_text(_disk_bytes(path))} on disk" if path.exists() else "index not on this machine"
        heap = service.backend_options.get("heap")
        out["retrieval service per node"] = (
            f"{service.num_cpus:g} CPU (+{service.backend_options.get('threads', 'default')} engine threads), "
            f"{reserved_gpus(service):g} GPU, RAM about the index: {size}" + (f" + JVM heap {heap}" if heap else ""))
    return out


ShapeCheck = Callable[[DictConfig, RunShape], list[Finding]]
CHECKS: tuple[ShapeCheck, ...] = (check_verl_startup, check_rollout_world, check_actor_mini_batch,
                                  check_log_prob_micro_batches, check_model_length, check_index_path)


def run_preflight(recipe: str, gpus: int, nodes: int = 1, overrides: list[str] | tuple[str, ...] = ()) -> Report:
    """Every check for ``recipe`` on ``nodes`` x ``gpus`` GPUs (``gpus``: GPUs per node)."""
    report = Report(recipe=recipe, gpus_per_node=gpus, nodes=nodes)
    size = declared_sizes(recipe)
    if size is not None and (gpus * nodes != size.gpus):
        report.add(Finding("recipe size", FAIL, f"{recipe} is built for {size.gpus} GPU(s) ({size.reason}); "
                           f"asked for {nodes} x {gpus}", key="--gpus",
                           fix=f"--gpus {size.gpus} --nodes 1, or another recipe sized for {nodes * gpus} GPUs"))
        return report
    cfg = compose_for_gpus(recipe, gpus, nodes, overrides)
    shape = run_shape(cfg)
    for check in CHECKS:
        for finding in check(cfg, shape):
            report.add(finding)
    for finding in check_service_gpus(cfg, shape, gpus):
        report.add(finding)
    report.needs = needs(cfg, shape)
    return report

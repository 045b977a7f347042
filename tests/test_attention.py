"""The attention the recipes ask for, and the doctor's GPU checks, on a CPU machine.

* ``${verl_rec.attn_implementation:}`` gives ``flash_attention_2`` only when flash-attn
  imports (a missing or broken install gives ``sdpa``); every recipe resolves it;
* the CPU overrides still force ``sdpa`` over a recipe that sets the key (``++``);
* ``sdpa`` is correct with veRL's ``use_remove_padding``: a packed row of several sequences
  (attention mask None, position ids restarting at 0) gives each sequence the logits it gets
  alone;
* ``python -m verl_rec.doctor --gpu`` reports each GPU check with what to do, and does not crash.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from verl_rec.recipes import RECIPES_DIR, recipe_names
from verl_rec.recipes.resolvers import FLASH, SDPA, attn_implementation, flash_attn_problem


def _compose(name: str, overrides=(), config_dir=RECIPES_DIR):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return compose(config_name=name, overrides=["hydra.searchpath=[pkg://verl.trainer.config]", *overrides])


def test_sdpa_when_flash_attn_is_missing_or_broken_and_flash_when_it_imports(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "flash_attn", None)  # not installed
    assert attn_implementation() == SDPA and flash_attn_problem() == "flash-attn is not installed"

    broken = tmp_path / "broken" / "flash_attn"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise OSError('flash_attn_2_cuda.so: undefined symbol: _ZN3c10')\n")
    monkeypatch.delitem(sys.modules, "flash_attn")
    monkeypatch.syspath_prepend(str(broken.parent))
    assert attn_implementation() == SDPA and "OSError: flash_attn_2_cuda.so: undefined symbol" in flash_attn_problem()

    working = tmp_path / "working" / "flash_attn"
    working.mkdir(parents=True)
    (working / "__init__.py").write_text("def flash_attn_func(*args, **kwargs):\n    pass\n")
    monkeypatch.delitem(sys.modules, "flash_attn", raising=False)
    monkeypatch.syspath_prepend(str(working.parent))
    assert attn_implementation() == FLASH and flash_attn_problem() is None
    monkeypatch.delitem(sys.modules, "flash_attn", raising=False)


@pytest.mark.parametrize("name", recipe_names())
def test_every_recipe_resolves_the_attention_here(name):
    cfg = _compose(name)
    assert OmegaConf.select(cfg, "actor_rollout_ref.model.override_config.attn_implementation") == attn_implementation()


def test_cpu_overrides_force_sdpa_over_a_recipe_and_on_a_bare_job():
    from verl.trainer.config import __file__ as verl_config_init

    from verl_rec.cpu_backend.overrides import cpu_overrides

    for cfg in (_compose("esci_bm25", cpu_overrides()),
                _compose("ppo_trainer", cpu_overrides(), config_dir=__import__("pathlib").Path(verl_config_init).parent)):
        assert cfg.actor_rollout_ref.model.override_config.attn_implementation == SDPA


def test_sdpa_keeps_packed_sequences_apart(tmp_path):
    """veRL's remove-padding path packs a micro-batch into one row (attention_mask None,
    use_cache False); with sdpa, transformers reads the sequence boundaries from the restarting
    position ids."""
    import torch
    from transformers import AutoModelForCausalLM

    from verl_rec.devkit.tiny_model import build_tiny_model

    model = AutoModelForCausalLM.from_pretrained(build_tiny_model(tmp_path / "tiny"), attn_implementation="sdpa").eval()
    generator = torch.Generator().manual_seed(0)
    first, second = (torch.randint(5, 500, (1, n), generator=generator) for n in (5, 7))

    def logits(ids, positions, mask=None):
        with torch.no_grad():  # as veRL's FSDP engine calls it: no mask, no cache
            return model(input_ids=ids, position_ids=positions, attention_mask=mask, use_cache=False).logits

    alone = [logits(seq, torch.arange(seq.shape[1])[None]) for seq in (first, second)]
    packed_ids = torch.cat([first, second], dim=1)
    packed_positions = torch.cat([torch.arange(5), torch.arange(7)])[None]
    packed = logits(packed_ids, packed_positions)
    torch.testing.assert_close(packed[:, :5], alone[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(packed[:, 5:], alone[1], atol=1e-5, rtol=1e-4)
    # the check can fail: with a mask over the whole row, the second sequence sees the first
    leaky = logits(packed_ids, packed_positions, torch.ones_like(packed_ids))
    assert not torch.allclose(leaky[:, 5:], alone[1], atol=1e-3)


def test_doctor_reports_ok_warn_and_fail_with_what_to_do(capsys):
    from verl_rec.doctor import Check, run_checks

    verdicts = run_checks({
        "fine": Check("print('all there')"),
        "optional": Check("import sys; print('missing, using the fallback'); sys.exit(3)", "install it for speed"),
        "broken": Check("raise RuntimeError('no driver')", "install the driver"),
    })
    out = capsys.readouterr().out
    assert verdicts == {"fine": "ok", "optional": "warn", "broken": "fail"}
    assert "[ok]   fine: all there" in out
    assert "[warn] optional: missing, using the fallback\n       what to do: install it for speed" in out
    assert "[FAIL] broken" in out and "RuntimeError: no driver" in out and "what to do: install the driver" in out


@pytest.mark.slow
def test_doctor_gpu_on_a_cpu_machine_says_what_to_do_and_does_not_crash():
    proc = subprocess.run([sys.executable, "-m", "verl_rec.doctor", "--gpu"], capture_output=True, text=True,
                          timeout=900)
    out = proc.stdout
    print(out)
    assert proc.returncode == 1, (out, proc.stderr)  # this machine has no CUDA: a failure, reported
    assert "[FAIL] CUDA" in out and "is a CPU build" in out and "VERL_REC_GPU=1 bash scripts/setup.sh" in out
    assert ("[FAIL] vLLM" in out and "pip install 'verl[vllm]==0.9.1'" in out) or "[ok]   vLLM" in out
    assert "[warn] flash-attn: flash-attn is not installed: the recipes use sdpa" in out
    assert "[ok]   attention: the recipes load the actor and reference models with attn_implementation=sdpa" in out
    assert "Traceback" not in out and "Traceback" not in proc.stderr
    assert out.strip().splitlines()[-1].startswith("verl-rec doctor: 2 check(s) failed")

"""FSDP on two CPU processes (torchrun, gloo), as far as this machine allows (issue 21, section 3).

What it documents (torch 2.13 CPU, accelerate 1.16):

* accelerate's FSDP plugin does not apply on CPU processes: ``Accelerator(cpu=True, fsdp_plugin=...)`` under
  torchrun runs as ``MULTI_CPU`` and ``prepare`` wraps the model in ``DistributedDataParallel``, silently
  (accelerate enables FSDP only for accelerator devices). So the Aligner's ``fsdp`` setting calls torch's
  ``fully_shard`` itself instead of the plugin (tests/test_align_fsdp.py).
* torch's own FSDP2 (``torch.distributed.fsdp.fully_shard``) does run on gloo on CPU: the tiny SD UNet is
  sharded in half, and one AdamW step on the same batch equals the unsharded step.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _serve_helpers import free_port

pytestmark = pytest.mark.slow  # two torchrun processes

HERE = Path(__file__).resolve().parent


def test_accelerate_ignores_fsdp_on_cpu_and_torch_fsdp2_shards_on_gloo(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(HERE)}
    env.pop("ACCELERATE_USE_CPU", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           str(HERE / "_fsdp_cpu_script.py"), str(tmp_path)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=HERE)
    assert res.returncode == 0, res.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for rec in ranks:
        assert rec["processes"] == 2
        # the plugin was given, yet the processes run as plain multi-CPU data parallel
        assert (rec["accelerate_type"], rec["accelerate_wrapper"]) == ("MULTI_CPU", "DistributedDataParallel")
        # FSDP2 itself: each rank holds about half of the parameters, and the step equals the unsharded one
        assert rec["local_numel"] < 0.6 * rec["full_numel"]
        assert rec["max_abs_diff_vs_unsharded"] < 1e-6
    assert sum(r["local_numel"] for r in ranks) >= ranks[0]["full_numel"]

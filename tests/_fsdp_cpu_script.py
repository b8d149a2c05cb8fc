"""Run under ``torchrun --nproc_per_node 2`` (gloo, CPU) by tests/test_fsdp_cpu.py; writes ``<out>/rank<r>.json``.

1. accelerate: ``Accelerator(cpu=True, fsdp_plugin=FullyShardedDataParallelPlugin(fsdp_version=2))``; records
   the distributed type and the class ``prepare`` wraps the model in.
2. torch: ``fully_shard`` (FSDP2) on the tiny SD UNet over the same gloo group; one AdamW step on the same
   batch on every rank, compared with the same step on an unsharded copy in this process.
"""

import copy
import json
import sys
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import FullyShardedDataParallelPlugin

from prefpaint_sdk.testing import tiny_inpaint_pipeline

out = Path(sys.argv[1])
acc = Accelerator(cpu=True, fsdp_plugin=FullyShardedDataParallelPlugin(fsdp_version=2))
probe = acc.prepare(torch.nn.Linear(4, 4))
record = {"processes": acc.num_processes, "accelerate_type": str(acc.distributed_type.value),
          "accelerate_wrapper": type(probe).__name__}

from torch.distributed.fsdp import fully_shard  # noqa: E402

unet = tiny_inpaint_pipeline(0).unet.float()
plain = copy.deepcopy(unet)
full_numel = sum(p.numel() for p in unet.parameters())
fully_shard(unet)
record["local_numel"] = sum(p.to_local().numel() for p in unet.parameters())
record["full_numel"] = full_numel

g = torch.Generator().manual_seed(0)  # the same batch on every rank
cfg = unet.config
x = torch.randn(2, cfg.in_channels, 8, 8, generator=g)
text = torch.randn(2, 5, cfg.cross_attention_dim, generator=g)
t = torch.tensor([10, 500])
for model in (unet, plain):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(x, t, encoder_hidden_states=text).sample.pow(2).mean().backward()
    opt.step()
sharded = {k: v.full_tensor() for k, v in unet.state_dict().items()}
record["max_abs_diff_vs_unsharded"] = max(float((sharded[k] - v).abs().max()) for k, v in plain.state_dict().items())
(out / f"rank{acc.process_index}.json").write_text(json.dumps(record))
acc.end_training()

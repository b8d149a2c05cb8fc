"""``prefpaint train ...``: the training command group (reward model, RL alignment)."""

from __future__ import annotations

import typer

train_app = typer.Typer(help="Train the reward model or align an inpainting model by RL.", no_args_is_help=True)

# train commands
from .train_align import train_align as _train_align_cmd; train_app.command("align")(_train_align_cmd)  # noqa: E402, E702 - one line by agreement
from .reward import train_reward as _train_reward_cmd; train_app.command("reward")(_train_reward_cmd)  # noqa: E402, E702 - one line by agreement

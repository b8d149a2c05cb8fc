"""``prefpaint train ...``: the training command group (reward model, RL alignment)."""

from __future__ import annotations

from . import reward as _reward
from . import train_align as _train_align
from ._common import make_app

train_app = make_app(help="Train the reward model or align an inpainting model by RL.", no_args_is_help=True)

# train commands
train_app.command("reward")(_reward.train_reward)
train_app.command("align")(_train_align.train_align)

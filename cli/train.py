"""``prefpaint train ...``: the training command group (reward model, RL alignment)."""

from __future__ import annotations

import typer

train_app = typer.Typer(help="Train the reward model or align an inpainting model by RL.", no_args_is_help=True)

# train commands

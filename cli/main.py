"""The ``prefpaint`` command. Each command group lives in its own module; this file only wires them.

Command modules import typer and rich only; the SDK, torch and diffusers are imported inside the
command bodies, so ``prefpaint --help`` answers at once.
"""

from __future__ import annotations

import typer

from . import doctor as _doctor
from . import extend as _extend
from . import inpaint as _inpaint
from . import models as _models

app = typer.Typer(
    name="prefpaint",
    help="Preference-aligned image inpainting (PrefPaint): inpaint, extend, score, train, reconstruct.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# commands
from .evaluate import eval_cmd as _eval_cmd; app.command("eval")(_eval_cmd)  # noqa: E402, E702 - one line by agreement
from .masks import masks_app as _masks_app; app.add_typer(_masks_app, name="masks")  # noqa: E402, E702 - one line by agreement
from .reward import score as _score_cmd; app.command("score")(_score_cmd)  # noqa: E402, E702 - one line by agreement
from .reward import convert_reward as _convert_cmd; app.command("convert-reward")(_convert_cmd)  # noqa: E402, E702 - one line by agreement
from .train import train_app as _train_app; app.add_typer(_train_app, name="train")  # noqa: E402, E702 - one line by agreement
from .recon3d import recon3d as _recon3d_cmd; app.command("recon3d")(_recon3d_cmd)  # noqa: E402, E702 - one line by agreement
app.command("inpaint")(_inpaint.inpaint)
app.command("download")(_models.download)
app.command("doctor")(_doctor.doctor)
app.command("extend")(_extend.extend)


def main() -> None:
    app()


if __name__ == "__main__":
    main()

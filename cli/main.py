"""The ``prefpaint`` command. Each command group lives in its own module; this file only wires them.

Command modules import typer and rich only; the SDK, torch and diffusers are imported inside the
command bodies, so ``prefpaint --help`` answers at once.
"""

from __future__ import annotations

from . import doctor as _doctor
from . import evaluate as _evaluate
from . import extend as _extend
from . import generate as _generate
from . import inpaint as _inpaint
from . import masks as _masks
from . import models as _models
from . import rate as _rate
from . import recon3d as _recon3d
from . import reward as _reward
from . import serve as _serve
from . import train as _train
from ._common import make_app, run_main

app = make_app(
    name="prefpaint",
    help="Preference-aligned image inpainting (PrefPaint): inpaint, extend, score, train, evaluate, reconstruct, serve.",
    no_args_is_help=True,
)

# commands
app.command("inpaint")(_inpaint.inpaint)
app.command("extend")(_extend.extend)
app.command("recon3d")(_recon3d.recon3d)
app.command("score")(_reward.score)
app.command("convert-reward")(_reward.convert_reward)
app.add_typer(_train.train_app, name="train")
app.command("eval")(_evaluate.eval_cmd)
app.add_typer(_masks.masks_app, name="masks")
app.command("rate")(_rate.rate)
app.command("generate-dataset")(_generate.generate_dataset)
app.command("download")(_models.download)
app.command("doctor")(_doctor.doctor)
app.command("serve")(_serve.serve)


def main() -> None:
    run_main(app)


if __name__ == "__main__":
    main()

"""Errors in the caller's terms: one table, both front doors.

An SDK error names its parameters as data (``prefpaint_sdk.errors.Arg``). A Python caller reads the argument
(``overwrite=True``), the CLI the printing command's flag (``--overwrite``), exit 2, one line. Each row raises
the same error through the SDK function and through the command that calls it. The mapping from SDK names to
flags is derived from the commands' own options; the tests below fail when a rename would drop it.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import typer
from PIL import Image
from prefpaint_cli import _common, _flags, _options
from prefpaint_cli.main import app
from typer.testing import CliRunner

from prefpaint_sdk.errors import Arg, Hint, InvalidInputError, OutputExistsError, PrefPaintError

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
_FLAG = re.compile(r"(?<![\w-])--[a-z0-9][a-z0-9-]*")
MISSING = "/nonexistent/model"


@pytest.fixture()
def w(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(tmp_path / "img.png")
    mask = np.zeros((32, 48), np.uint8)
    mask[8:20, 10:30] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    Image.new("L", (20, 20)).save(tmp_path / "square.png")
    (tmp_path / "taken.png").write_bytes(b"mine")
    return tmp_path


# ---- the table ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    id: str
    param: str  # the SDK parameter the error is about (``exc.param``)
    python: Callable  # w -> None: raises through the SDK
    py_text: str  # what the Python message says
    argv: Callable  # w -> the command line after "prefpaint"
    cli_text: str  # what the CLI line says


def _inpaint(w, *extra, mask="mask.png", out="out.png"):
    return ["inpaint", w / "img.png", w / mask, "-o", w / out, "--model", MISSING, "--offline", "--device", "cpu", *extra]


def _extend(w, *extra):
    return ["extend", w / "img.png", "-o", w / "wide.png", "--model", MISSING, "--offline", "--device", "cpu", *extra]


def _score(w, *extra):
    return ["score", w / "img.png", w / "mask.png", "--reward", "brightness", *extra]


def _check_outputs(w):
    from prefpaint_sdk.files import check_outputs

    check_outputs([w / "taken.png"], overwrite=False)


def _mask_size(w):
    from prefpaint_sdk.imaging import check_mask_size

    check_mask_size((20, 20), (48, 32))


def _pixels(w):
    from prefpaint_sdk.imaging import check_image_file

    check_image_file(w / "img.png", max_pixels=10)


def _steps_strength(w):
    from prefpaint_apps.outpaint import check_run_options

    check_run_options(steps=1, strength=0.5)


def _seam(w):
    from prefpaint_apps.outpaint import check_run_options

    check_run_options(seam_strength=0.5)


def _seed(w):
    from prefpaint_sdk.validation import check_seed

    check_seed(-1)


def _model_name(w):
    from prefpaint_sdk.hub import check_model_name

    check_model_name("")


def _alpha(w):
    from prefpaint_sdk.imaging import check_alpha_mask

    check_alpha_mask(w / "mask.png")


def _norm(w):
    from prefpaint_sdk.reward.specs import stack_specs

    stack_specs(["brightness"], norm="bogus")


def _weights(w):
    from prefpaint_sdk.reward.specs import stack_specs

    stack_specs(["brightness"], "abc")


def _pad(w):
    from prefpaint_apps.outpaint.size import resolve_padding

    resolve_padding((48, 32), left=-5)


def _window(w):
    from prefpaint_apps.outpaint import check_run_options

    check_run_options(window=4)


def _validate_score(**kw):
    def call(w):
        from prefpaint_sdk.reward import validate_score

        validate_score(w / "img.png", w / "mask.png", **kw)
    return call


def _validate(**kw):
    def call(w):
        from prefpaint_sdk import Inpainter

        Inpainter.validate(**kw)
    return call


TABLE = [
    Row("overwrite", "overwrite", _check_outputs, "already exists; pass overwrite=True to replace it",
        lambda w: _inpaint(w, out="taken.png"), "already exists; pass --overwrite to replace it"),
    Row("resize-mask", "resize_mask", _mask_size, "pass resize_mask=True to resize it",
        lambda w: _inpaint(w, mask="square.png"), "pass --resize-mask to resize it"),
    Row("max-pixels", "max_pixels", _pixels, "raise max_pixels or PREFPAINT_MAX_PIXELS",
        lambda w: _inpaint(w, "--max-pixels", "10"), "raise --max-pixels or PREFPAINT_MAX_PIXELS"),
    Row("steps-at-strength", "steps", _steps_strength, "steps=1 at strength=0.5 leaves no denoising step; raise steps to",
        lambda w: _extend(w, "--steps", "1", "--strength", "0.5"),
        "--steps 1 at --strength 0.5 leaves no denoising step; raise --steps to"),
    Row("seam-strength", "seam_strength", _seam, "seam_strength has no effect without seam_pass=True",
        lambda w: _extend(w, "--seam-strength", "0.5"), "--seam-strength has no effect without --seam-pass"),
    Row("seed", "seed", _seed, "seed must be between 0 and", lambda w: _inpaint(w, "--seed", "-1"),
        "--seed must be between 0 and"),
    Row("model-name", "model", _model_name, "model '' names no model", lambda w: _inpaint(w, "--model", ""),
        "--model '' names no model"),
    Row("mask-from-alpha", "mask_from_alpha", _alpha, "no alpha channel; drop mask_from_alpha",
        lambda w: _inpaint(w, "--mask-from-alpha"), "no alpha channel; drop --mask-from-alpha"),
    Row("reward-norm", "reward_norm", _norm, "reward_norm must be one of", lambda w: _score(w, "--reward-norm", "bogus"),
        "--reward-norm must be one of"),
    Row("reward-weights", "reward_weights", _weights, "write e.g. reward_weights='0.7,0.3'",
        lambda w: _score(w, "--reward-weights", "abc"), "write e.g. --reward-weights 0.7,0.3"),
    # Inpainter.validate: the model-free checks that inpaint runs first, and from_pretrained and a call again
    Row("inpaint-offload", "offload", _validate(offload="disk"), "offload must be one of",
        lambda w: _inpaint(w, "--offload", "disk"), "--offload must be one of"),
    Row("inpaint-scheduler", "scheduler", _validate(scheduler="euler"), "scheduler must be one of",
        lambda w: _inpaint(w, "--scheduler", "euler"), "--scheduler must be one of"),
    Row("inpaint-derived-seeds", "seed", _validate(seed=2**32 - 2, num_candidates=3), "(and seed + 2 for 3 derived seeds)",
        lambda w: _inpaint(w, "--seed", str(2**32 - 2), "-n", "3"), "--seed must be between 0 and"),
    Row("inpaint-mask-dilate", "mask_dilate", _validate(mask_dilate=-1), "mask_dilate must be ≥ 0",
        lambda w: _inpaint(w, "--mask-dilate", "-1"), "--mask-dilate must be ≥ 0"),
    # validate_score (score-runner): the score command's model-free checks, run first
    Row("score-original-without-stack", "original", _validate_score(original="orig.png"),
        "original is for a reward stack; add reward=['NAME']",
        lambda w: ["score", w / "img.png", w / "mask.png", "--original", w / "img.png", "--reward-model", MISSING],
        "--original is for a reward stack; add --reward NAME"),
    Row("score-normalize-with-stack", "normalize", _validate_score(reward=["brightness"], normalize=True),
        "normalize is for the PrefPaint-only score; drop it, or drop reward", lambda w: _score(w, "--normalize"),
        "--normalize is for the PrefPaint-only score; drop it, or drop --reward"),
    Row("extend-padding", "left", _pad, "left must be >= 0 pixels", lambda w: _extend(w, "--left", "-5"),
        "--left must be >= 0 pixels"),
    Row("extend-window", "window", _window, "window must be a whole number",
        lambda w: _extend(w, "--window", "4"), "--window must be a whole number"),
]


@pytest.mark.parametrize("row", TABLE, ids=[r.id for r in TABLE])
def test_the_python_message_names_the_argument(row, w):
    with pytest.raises(PrefPaintError) as info:
        row.python(w)
    text = str(info.value)
    assert row.py_text in text, text
    assert info.value.param == row.param
    assert not _FLAG.findall(text), f"a Python caller is told about a flag: {text!r}"
    assert "\n" not in text


@pytest.mark.parametrize("row", TABLE, ids=[r.id for r in TABLE])
def test_the_cli_line_names_the_flag(row, w):
    r = runner.invoke(app, [str(a) for a in row.argv(w)], env={"COLUMNS": "2000"})
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and "Traceback" not in r.output, r.output
    assert lines[0].startswith("error: ") and row.cli_text in lines[0], lines[0]
    flag = _flag_of(row.argv(w), row.param)
    assert flag and flag in lines[0], (flag, lines[0])
    assert f"{row.param}=" not in lines[0] and "=True" not in lines[0], lines[0]
    assert not (w / "out.png").exists() and not (w / "wide.png").exists()
    assert (w / "taken.png").read_bytes() == b"mine"


# ---- the mapping: SDK names -> the command's flags -------------------------------------------------
def _command(argv):
    cmd, names = typer.main.get_command(app), []
    for word in map(str, argv):
        sub = getattr(cmd, "commands", {}).get(word)
        if sub is None:
            break
        cmd, names = sub, names + [word]
    return cmd, names


def _flag_of(argv, param: str) -> str | None:
    cmd, names = _command(argv)
    with cmd.make_context(" ".join(names), [], resilient_parsing=True) as ctx:
        return _flags.flag_for(Arg(param), ctx)


def _leaves():
    def walk(cmd, path):
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                yield from walk(sub, path + [name])
        else:
            yield path, cmd
    return list(walk(typer.main.get_command(app), []))


def _named_params() -> dict[str, set[str]]:
    """Every parameter name an SDK or app error names as a literal, by file: ``Arg("x"...)``, ``bad_value("x"...)``,
    and the ``param=`` defaults of the reward specs."""
    found: dict[str, set[str]] = {}
    for folder in ("prefpaint_sdk", "apps"):
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                name = None
                if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in ("Arg", "bad_value"):
                    if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                        name = node.args[0].value
                elif isinstance(node, ast.arg) and node.arg in ("param", "weights_param"):
                    continue
                if name:
                    found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
            for fn in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
                args = fn.args.args + fn.args.kwonlyargs
                defaults = [None] * (len(fn.args.args) - len(fn.args.defaults)) + list(fn.args.defaults) + list(fn.args.kw_defaults)
                for a, d in zip(args, defaults):
                    if a.arg in ("param", "weights_param") and isinstance(d, ast.Constant) and isinstance(d.value, str):
                        found.setdefault(d.value, set()).add(str(path.relative_to(ROOT)))
    return found


# Parameters that only a Python caller (or a config file, ``--set``) can pass: shown as Python shows them.
PYTHON_ONLY = {
    "adv_std", "audit_ring", "eta", "freeze_fraction", "fusion_backend", "hacking_min_drop", "hacking_patience",
    "fsdp", "inpaint_kwargs", "log_with", "logprob_region", "max_bad_fraction", "min_margin", "mixed_precision", "n_boot", "scores",
    "split",
    "stop_after_epochs", "successes",
}


def test_every_parameter_an_error_names_is_a_flag_somewhere_or_python_only():
    """A renamed option cannot silently drop an error's flag: every literal parameter name in an SDK or app
    error is an option of some command, or is declared Python-only here (then every command shows it as
    Python does)."""
    commands = _leaves()
    missing = {}
    for name, files in sorted(_named_params().items()):
        flags = set()
        for path, cmd in commands:
            with cmd.make_context(" ".join(path), [], resilient_parsing=True) as ctx:
                flag = _flags.flag_for(Arg(name), ctx)
            if flag:
                flags.add(flag)
                assert flag in {o for p in cmd.params for o in [*p.opts, *p.secondary_opts]} | {
                    o for p in typer.main.get_command(app).params for o in p.opts}, (path, name, flag)
        if not flags and name not in PYTHON_ONLY:
            missing[name] = sorted(files)
        assert not (flags and name in PYTHON_ONLY), f"{name!r} is declared Python-only, but {sorted(flags)} say it"
    assert not missing, f"errors name parameters that no command has and that are not Python-only: {missing}"


def test_every_row_names_a_flag_its_command_has():
    for row in TABLE:
        cmd, names = _command(row.argv(Path("/w")))
        flag = _flag_of(row.argv(Path("/w")), row.param)
        assert flag, f"{' '.join(names)} has no option for {row.param!r}"
        assert flag.split()[0] in {o for p in cmd.params for o in [*p.opts, *p.secondary_opts]}


def test_sdk_names_point_at_existing_options():
    names = {p.name for _, cmd in _leaves() for p in cmd.params}
    for sdk, cli in _flags.SDK_NAMES.items():
        assert cli in names, f"SDK_NAMES maps {sdk!r} to {cli!r}, which no command has"


def test_a_parameter_the_command_lacks_is_never_a_flag():
    with _leaves()[0][1].make_context("x", [], resilient_parsing=True) as ctx:
        err = OutputExistsError("output 'x' exists", Hint("; pass ", Arg("no_such_param", True), " to replace it"))
        assert _flags.cli_message(err, ctx) == "output 'x' exists"
        bare = InvalidInputError(Arg("no_such_param"), " must be > 0")
        assert _flags.cli_message(bare, ctx) == "no_such_param must be > 0"


# ---- value rules are declared with their options ---------------------------------------------------
# Numeric options without a declared rule: their values are checked by the SDK function the command calls
# (extend's planner, the serve settings), or by type (every float is finite). A new one must be added here.
UNRULED = {
    ("inpaint", "guidance"), ("inpaint", "crop_margin"), ("extend", "left"), ("extend", "right"), ("extend", "top"),
    ("extend", "bottom"), ("extend", "step_frac"), ("extend", "overlap"), ("extend", "feather"),
    ("extend", "seam_strength"), ("extend", "strength"), ("extend", "guidance"), ("eval", "guidance"),
    ("eval", "confidence"), ("serve", "port"), ("serve", "max_queue"), ("serve", "max_upload_mb"),
    ("serve", "upload_timeout"),
}


def test_every_numeric_option_declares_its_rule():
    rules = {_options.COUNT, _options.NON_NEGATIVE, _options.POSITIVE, _options.SEED}
    unruled = set()
    for path, cmd in _leaves():
        for p in cmd.params:
            desc = getattr(p, "type_descriptor", None)
            rule = getattr(p.callback, "__wrapped__", p.callback)  # typer wraps a callback
            if desc is not None and desc.annotation in (int, float) and rule not in rules:
                unruled.add((" ".join(path), p.name))
    assert unruled == UNRULED


def test_a_rule_follows_its_option_through_a_rename():
    """The rule is part of the option: a command built with another flag name refuses the same value."""
    sub = _common.make_app()

    @sub.command()
    def go(n_steps: int = typer.Option(1, "--n-steps", callback=_options.COUNT)) -> None:
        pass

    r = runner.invoke(sub, ["--n-steps", "0"])
    assert r.exit_code == 2 and "--n-steps must be ≥ 1, got 0" in r.output, r.output


def test_a_log_record_names_the_flag_of_the_printing_command():
    import logging

    record = logging.LogRecord("prefpaint_sdk.x", logging.WARNING, __file__, 1, "%s given but '%s' holds no checkpoint",
                               (Arg("resume", True), "out"), None)
    assert record.getMessage() == "resume=True given but 'out' holds no checkpoint"  # a Python caller's log
    cmd, names = _command(["train", "reward"])
    with cmd.make_context(" ".join(names), [], resilient_parsing=True):
        assert _common._CliTextFilter().filter(record)
    assert record.getMessage() == "--resume given but 'out' holds no checkpoint"

"""The CLI boundary's mechanisms, over every command found by introspection (not a hand-kept list):

markup-free messages, no suggested flag a command lacks, finite floats, counts, sizes and seeds refused
before any model loads, one-line usage errors, strict JSON, --max-pixels, offline default, quiet library
bars, SIGTERM, and batch output sets checked before the model loads.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from prefpaint_cli import _common, _flags, _options, _quiet
from prefpaint_cli.main import app
from typer.testing import CliRunner

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


# ---- helpers ------------------------------------------------------------------------------------
def _commands():
    """(command path, click command) for every leaf command of the app."""
    def walk(cmd, path):
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                yield from walk(sub, path + [name])
        else:
            yield path, cmd

    return list(walk(typer.main.get_command(app), []))


COMMANDS = _commands()


def _annotation(param):
    desc = getattr(param, "type_descriptor", None)
    if desc is not None:
        return desc.annotation
    return {"float": float, "integer": int}.get(getattr(param.type, "name", ""), None)


def _is_option(param) -> bool:
    return any(o.startswith("-") for o in param.opts)


def _required_args(cmd, tmp: Path) -> list[str]:
    """Values for every required argument/option, so that parsing succeeds (the body may then fail)."""
    args: list[str] = []
    for p in cmd.params:
        if not p.required:
            continue
        value = str(tmp / f"req-{p.name}")
        if _is_option(p):
            args += [p.opts[0], value]
        else:
            args.append(value)
    return args


def _has(cmd, flag: str) -> bool:
    return any(flag in p.opts or flag in getattr(p, "secondary_opts", []) for p in cmd.params)


def _run(args, **kw):
    return runner.invoke(app, [str(a) for a in args], **kw)


def _one_error_line(r, code: int = 2) -> str:
    assert r.exit_code == code, (r.exit_code, r.output)
    assert "Traceback" not in r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


@pytest.fixture()
def pictures(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(tmp_path / "img.png")
    mask = np.zeros((32, 48), np.uint8)
    mask[8:20, 10:30] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    Image.new("L", (20, 20)).save(tmp_path / "square.png")
    return tmp_path


# ---- 1. text, never markup ----------------------------------------------------------------------
def test_markup_in_paths_is_printed_as_text(pictures):
    line = _one_error_line(_run(["inpaint", pictures / "nope[/x].png", pictures / "mask.png"]))
    assert "nope[/x].png" in line and line.startswith("error: ")
    Image.open(pictures / "img.png").save(pictures / "[bold]x.png")
    line = _one_error_line(_run(["inpaint", pictures / "[bold]x.png", pictures / "nope[red].png"]))
    assert "nope[red].png" in line
    line = _one_error_line(_run(["score", pictures / "[bold]x.png", pictures / "[/bold]missing.png"]))
    assert "[/bold]missing.png" in line


def test_help_text_is_not_markup():
    r = _run(["train", "align", "--help"])
    assert r.exit_code == 0 and "[align]" in r.output
    r = _run(["train", "reward", "--help"])
    assert r.exit_code == 0 and "[reward]" in r.output


def test_helpers_escape_and_keep_one_line(capsys):
    _common.say_error("a [bold]b[/bold] [/x] " + "long " * 40)
    _common.warn("[red]w")
    _common.failed("[i]item", ValueError("bad [/]"))
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: a [bold]b[/bold] [/x] long") and len(err) == 3
    assert err[1] == "warning: [red]w" and err[2] == "failed: [i]item: ValueError: bad [/]"


def test_progress_descriptions_are_text():
    from rich.console import Console

    bar = _common.progress(quiet=False)
    task = bar.add_task("[bold]x.png", total=1)
    rendered = bar.columns[0].render(bar.tasks[task])
    out = Console(width=200, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    out.print(rendered)
    assert "[bold]x.png" in out.export_text()


# ---- 2. no message suggests a flag the printing command lacks -----------------------------------
_FLAG = re.compile(r"(?<![\w-])--[a-z0-9][a-z0-9-]*")


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_flag_advice_follows_the_printing_command(path, cmd):
    from prefpaint_sdk.errors import Arg, Hint, InvalidInputError, OutputExistsError
    from prefpaint_sdk.validation import at_least, finite

    errors = [InvalidInputError("mask is 640x480 but image is 512x512", Hint("; pass ", Arg("resize_mask", True), " to resize it")),
              OutputExistsError("output 'x.png' already exists", Hint("; pass ", Arg("overwrite", True), " to replace it"))]
    for check in (lambda: at_least("steps", 0), lambda: finite("guidance_scale", float("nan"))):
        with pytest.raises(InvalidInputError) as info:
            check()
        errors.append(info.value)
    ctx = cmd.make_context(" ".join(path), [], resilient_parsing=True)
    with ctx:
        text, text2, text3, text4 = (_common.error_line(e) for e in errors)
    if _has(cmd, "--resize-mask"):
        assert text == "mask is 640x480 but image is 512x512; pass --resize-mask to resize it"
    else:
        assert text == "mask is 640x480 but image is 512x512"  # advice the command cannot follow is left out
    if _has(cmd, "--overwrite"):
        assert text2 == "output 'x.png' already exists; pass --overwrite to replace it"
    else:
        assert text2 == "output 'x.png' already exists"
    assert text3 == ("--steps must be ≥ 1, got 0" if _has(cmd, "--steps") else "steps must be ≥ 1, got 0")
    assert text4.startswith("--guidance " if _has(cmd, "--guidance") else "guidance_scale ")
    for flag in _FLAG.findall(text + text2 + text3 + text4):
        assert _has(cmd, flag), (path, flag)


@pytest.fixture(scope="module")
def tiny_reward(tmp_path_factory):
    from prefpaint_sdk.testing import save_tiny_reward_model

    return save_tiny_reward_model(tmp_path_factory.mktemp("models") / "tiny-reward", seed=0)


def test_score_does_not_suggest_resize_mask(pictures, tiny_reward):
    r = _run(["score", pictures / "img.png", pictures / "square.png", "--reward-model", tiny_reward, "--device", "cpu"])
    line = _one_error_line(r)
    assert line.startswith("error: mask is 20") and "48" in line and "--resize-mask" not in line


# ---- 3. numbers before any model loads ----------------------------------------------------------
FLOATS = [(path, cmd, p) for path, cmd in COMMANDS for p in cmd.params
          if _is_option(p) and _annotation(p) is float]


def test_every_command_with_floats_is_covered():
    names = {" ".join(path) for path, _, _ in FLOATS}
    assert {"inpaint", "extend", "recon3d", "eval", "train reward", "train align"} <= names


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize("path,cmd,param", FLOATS, ids=[f"{' '.join(p)} {q.name}" for p, _, q in FLOATS])
def test_every_float_option_must_be_finite(path, cmd, param, value, tmp_path):
    args = [*path, *_required_args(cmd, tmp_path)]
    if _has(cmd, "--model"):
        args += ["--model", "/nonexistent"]  # a model load would be exit 2/3 with another message
    r = _run([*args, f"{param.opts[0]}={value}"])
    line = _one_error_line(r)
    assert "finite number" in line and _flags.flag_of(param) in line


COUNT_CASES = [
    (["score", "{img}", "{mask}", "--batch-size"], ["0", "-1"]),
    (["inpaint", "{img}", "{mask}", "-n"], ["0"]),
    (["inpaint", "{img}", "{mask}", "--steps"], ["0", "-5"]),
    (["extend", "{img}", "--steps"], ["0"]),
    (["recon3d", "{img}", "--views"], ["0"]),
    (["recon3d", "{img}", "--max-frames"], ["0"]),
    (["eval", "--data", "{img}", "-o", "{out}", "--samples"], ["0"]),
    (["train", "align", "--data", "{img}", "--out", "{out}", "--iterations"], ["0"]),
    (["train", "reward", "--data", "{img}", "--out", "{out}", "--epochs"], ["0"]),
    (["inpaint", "{img}", "{mask}", "--max-pixels"], ["0"]),
    (["recon3d", "{img}", "--voxel-size"], ["0", "-0.1"]),
    (["recon3d", "{img}", "--fov"], ["0"]),
    (["eval", "--data", "{img}", "-o", "{out}", "--tie-tolerance"], ["-0.5"]),
]


@pytest.mark.parametrize("args,values", COUNT_CASES, ids=[" ".join(a[:1] + a[-1:]) for a, _ in COUNT_CASES])
def test_counts_and_sizes(args, values, pictures):
    for value in values:
        argv = [a.format(img=pictures / "img.png", mask=pictures / "mask.png", out=pictures / "out") for a in args]
        line = _one_error_line(_run([*argv, value, "--model", "/nonexistent"] if argv[0] in ("inpaint",) else [*argv, value]))
        assert ("≥" in line or "> 0" in line) and value in line
    assert not (pictures / "out").exists()


SEEDED = [(path, cmd) for path, cmd in COMMANDS if _has(cmd, "--seed")]


@pytest.mark.parametrize("value", ["-1", str(2**32)])
@pytest.mark.parametrize("path,cmd", SEEDED, ids=[" ".join(p) for p, _ in SEEDED])
def test_one_seed_rule_everywhere(path, cmd, value, tmp_path):
    r = _run([*path, *_required_args(cmd, tmp_path), "--seed", value])
    assert _one_error_line(r) == f"error: --seed must be between 0 and 4294967295, got {value} (see 'prefpaint {' '.join(path)} --help')"


def test_derived_seeds_stay_in_range(pictures):
    r = _run(["inpaint", pictures / "img.png", pictures / "mask.png", "--seed", str(2**32 - 2), "-n", "3",
              "--model", "/nonexistent"])
    assert _one_error_line(r) == ("error: --seed must be between 0 and 4294967295 (and seed + 2 for 3 derived seeds), "
                                  f"got {2**32 - 2}")


def test_usage_errors_are_one_line(pictures):
    for args in (["inpaint", pictures / "img.png", pictures / "mask.png", "--steps", "abc"],
                 ["inpaint", pictures / "img.png"],
                 ["score", "--no-such-flag"],
                 ["nosuchcommand"]):
        line = _one_error_line(_run(args))
        assert line.startswith("error: ")


# ---- 4. strict JSON -----------------------------------------------------------------------------
def test_json_output_is_strict():
    from prefpaint_sdk.errors import PrefPaintError

    assert _common.dumps_json({"score": 1.5, "p": Path("a")}) == '{"score": 1.5, "p": "a"}'
    for bad in (math.nan, math.inf):
        with pytest.raises(PrefPaintError, match="score"):
            _common.dumps_json({"image": "x.png", "score": bad})


def test_score_json_is_parseable_strict_json(pictures, tiny_reward):
    r = _run(["score", pictures / "img.png", pictures / "mask.png", "--reward-model", tiny_reward, "--device", "cpu",
              "--json", "--quiet"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1

    def refuse(name):
        raise AssertionError(f"non-strict JSON constant {name}")

    rec = json.loads(lines[0], parse_constant=refuse)
    assert rec["image"] == str(pictures / "img.png") and math.isfinite(rec["score"])


# ---- 5. cheap checks first: whole output sets ----------------------------------------------------
def test_single_mode_refuses_any_member_of_the_set(pictures):
    out = pictures / "out.png"
    (pictures / "out.json").write_text("{}")
    line = _one_error_line(_run(["inpaint", pictures / "img.png", pictures / "mask.png", "-o", out,
                                 "--model", "/nonexistent"]))
    assert "out.json" in line and "already exists" in line
    (pictures / "out.json").unlink()
    (pictures / "out_cand1.png").write_bytes(b"keep")
    line = _one_error_line(_run(["inpaint", pictures / "img.png", pictures / "mask.png", "-o", out, "-n", "2",
                                 "--save-all", "--model", "/nonexistent"]))
    assert "out_cand1.png" in line and (pictures / "out_cand1.png").read_bytes() == b"keep"
    line = _one_error_line(_run(["inpaint", pictures / "img.png", pictures / "mask.png", "-o", pictures / "o.txt",
                                 "--model", "/nonexistent"]))
    assert "unknown suffix '.txt'" in line


# A folder batch is a manifest job (issue 24, one runner): its skip and resume rules are the job runner's.
def test_batch_skips_finished_items_without_loading_and_refuses_files_it_did_not_write(pictures, tiny_pipeline_dir,
                                                                                      monkeypatch):
    from prefpaint_sdk import Inpainter

    images = pictures / "images"
    images.mkdir()
    for name in ("a", "b"):
        Image.open(pictures / "img.png").save(images / f"{name}.png")
    out = pictures / "done"
    argv = ["inpaint", images, pictures / "mask.png", "-o", out, "--model", tiny_pipeline_dir, "--steps", "1",
            "--device", "cpu", "--dtype", "float32", "--seed", "0", "--quiet"]
    assert _run(argv).exit_code == 0
    stamps = {p.name: p.stat().st_mtime_ns for p in [*out.glob("*.png"), *out.glob("*.json")]}

    def no_load(*a, **k):
        raise AssertionError("a model was loaded although every item was finished")

    monkeypatch.setattr(Inpainter, "from_pretrained", no_load)
    r = _run(argv)  # every item finished: nothing to do, no model loaded
    assert r.exit_code == 0, r.output
    assert {p.name: p.stat().st_mtime_ns for p in [*out.glob("*.png"), *out.glob("*.json")]} == stamps
    # a file in the way of a new item that the job did not write: refused before the model loads, naming it
    Image.open(pictures / "img.png").save(images / "c.png")
    (out / "c.json").write_text("{}")
    line = _one_error_line(_run(argv))
    assert "c.json" in line and "--overwrite" in line
    assert (out / "c.json").read_text() == "{}" and not (out / "c.png").exists()


def test_batch_rerun_completes_what_is_missing(pictures, tiny_pipeline_dir):
    images = pictures / "images"
    images.mkdir()
    Image.open(pictures / "img.png").save(images / "a.png")
    out = pictures / "done"
    argv = ["inpaint", images, pictures / "mask.png", "-o", out, "--model", tiny_pipeline_dir, "--steps", "1",
            "--device", "cpu", "--dtype", "float32", "--seed", "0", "--quiet"]
    assert _run(argv).exit_code == 0
    a = (out / "a.png").read_bytes()
    Image.open(pictures / "img.png").save(images / "b.png")
    (out / "a.json").unlink()  # a set that lost a file is redone whole
    r = _run(argv)
    assert r.exit_code == 0, r.output
    assert (out / "a.png").read_bytes() == a and json.loads((out / "a.json").read_text())["seed"] == 0
    assert Image.open(out / "b.png").size == (48, 32) and json.loads((out / "b.json").read_text())["seed"] == 0


# ---- 7. --max-pixels ---------------------------------------------------------------------------
IMAGE_COMMANDS = {"inpaint", "score", "extend", "recon3d", "eval", "masks generate", "train reward", "train align"}


def test_max_pixels_on_every_image_command_with_the_documented_default():
    from prefpaint_sdk.imaging import DEFAULT_MAX_PIXELS

    assert _options.DEFAULT_MAX_PIXELS_TEXT == str(DEFAULT_MAX_PIXELS)
    for path, cmd in COMMANDS:
        if " ".join(path) in IMAGE_COMMANDS:
            param = next(p for p in cmd.params if p.name == "max_pixels")
            assert str(DEFAULT_MAX_PIXELS) in param.help and "PREFPAINT_MAX_PIXELS" in param.help


def test_max_pixels_refuses_a_large_image_before_loading(pictures):
    from prefpaint_sdk import imaging

    before = imaging.get_max_pixels()
    try:
        line = _one_error_line(_run(["inpaint", pictures / "img.png", pictures / "mask.png", "--max-pixels", "100",
                                     "--model", "/nonexistent"]))
        assert "img.png" in line and "100" in line
    finally:
        imaging.set_max_pixels(before)


# ---- 8. offline follows HF_HUB_OFFLINE; 9. quiet library bars -----------------------------------
def test_offline_defaults_to_unset_everywhere():
    for path, cmd in COMMANDS:
        for p in cmd.params:
            if p.name == "offline":
                assert p.default is None, path


def test_library_progress_bars_are_quiet(monkeypatch, tmp_path):
    import diffusers.utils.logging as dlog

    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    dlog.enable_progress_bar()
    try:
        _common.setup(quiet=False, debug=False)
        assert not dlog.is_progress_bar_enabled() and os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    finally:
        dlog.enable_progress_bar()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # a library not imported yet is quieted right after its import
    (tmp_path / "fakelib_h1.py").write_text("quiet = False\ndef disable_progress_bar():\n    global quiet\n    quiet = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _quiet.after_import("fakelib_h1", lambda m: m.disable_progress_bar())
    import fakelib_h1

    assert fakelib_h1.quiet is True


def test_help_imports_nothing_heavy():
    code = "import sys, prefpaint_cli.main; print(sorted(m for m in ('numpy', 'torch', 'PIL', 'diffusers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


# ---- 6. SIGTERM behaves like Ctrl-C ------------------------------------------------------------
def test_sigterm_cleans_up_and_exits_143(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        import typer
        from prefpaint_cli._common import handle_errors, setup
        setup()
        try:
            with handle_errors():
                try:
                    Path({str(tmp_path / 'started')!r}).write_text('1')
                    time.sleep(30)
                finally:
                    Path({str(tmp_path / 'cleaned')!r}).write_text('1')
        except typer.Exit as e:
            sys.exit(e.exit_code)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while not (tmp_path / "started").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert err.strip() == "interrupted" and (tmp_path / "cleaned").exists()


def test_value_errors_of_any_origin_name_the_flag():
    from prefpaint_sdk.errors import Arg, InvalidInputError
    from prefpaint_sdk.validation import bad_value

    limit = InvalidInputError("raise ", Arg("max_pixels"), " or PREFPAINT_MAX_PIXELS")
    cmd = dict(COMMANDS_BY_NAME)["extend"]
    with cmd.make_context("extend", [], resilient_parsing=True):
        assert _flags.cli_message(bad_value("left", "left must be >= 0 pixels, got -5")) == "--left must be >= 0 pixels, got -5"
        assert _flags.cli_message(limit) == "raise --max-pixels or PREFPAINT_MAX_PIXELS"
        # a leading word that is not a parameter keeps its meaning
        assert _flags.cli_message(InvalidInputError("output 'x.png' is a folder")) == "output 'x.png' is a folder"
    cmd = dict(COMMANDS_BY_NAME)["masks generate"]
    with cmd.make_context("generate", [], resilient_parsing=True):
        assert _flags.cli_message(limit) == "raise --max-pixels or PREFPAINT_MAX_PIXELS"
        assert _flags.cli_message(InvalidInputError("pass a bigger ", Arg("window"))) == "pass a bigger window"


COMMANDS_BY_NAME = [(" ".join(p), c) for p, c in COMMANDS]


def test_library_log_records_are_one_plain_line(capsys):
    import logging

    _common.setup(quiet=False, debug=False)
    try:
        logging.getLogger("prefpaint_sdk.test").warning("skipped '[bold]a.png': %s", "too   big\nreally")
        logging.getLogger("prefpaint_sdk.test").info("plain [red]info")
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    assert capsys.readouterr().err.splitlines() == ["warning: skipped '[bold]a.png': too big really", "plain [red]info"]

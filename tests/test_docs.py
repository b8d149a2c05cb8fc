"""The documentation site (docs/, mkdocs.yml): it builds strictly, its API page documents every public name, and
every `prefpaint ...` command in its shell blocks exists."""

from __future__ import annotations

import html
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import skip_unless_ci

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _mkdocs() -> list[str]:
    try:
        import mkdocs  # noqa: F401
        import mkdocstrings  # noqa: F401
    except ImportError:
        skip_unless_ci("the [docs] extra is not installed (bash scripts/setup.sh installs it)")
    return [sys.executable, "-m", "mkdocs"]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([*_mkdocs(), "build", "--strict", "--site-dir", str(out)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    return out


def test_strict_build_makes_every_page(site):
    nav_pages = re.findall(r":\s*([\w/-]+)\.md\s*$", (ROOT / "mkdocs.yml").read_text(), re.M)
    assert len(nav_pages) >= 17
    for page in nav_pages:
        index = site / ("" if page == "index" else page) / "index.html"
        assert index.is_file(), page
    # RESULTS.md is a page of the site, not a broken link
    assert "Benchmark results" in (site / "results" / "index.html").read_text()


def test_api_page_documents_every_public_name(site):
    import prefpaint_sdk
    import prefpaint_sdk.utils

    page = (site / "api" / "index.html").read_text()
    headings = set()
    for h in re.findall(r'<h3 id="[^"]+" class="doc doc-heading">(.*?)</h3>', page, re.S):
        h = re.sub(r'<span class="doc doc-labels">.*?</span>|<a [^>]*class="headerlink".*?</a>', "", h, flags=re.S)
        text = html.unescape(re.sub(r"<[^>]+>", "", h)).strip()
        headings.add(re.match(r"\w+", text).group(0))  # a function's heading goes on with its signature
    public = {n for n in prefpaint_sdk.__all__ if not n.startswith("__")}
    assert public - headings == set()
    assert set(prefpaint_sdk.utils.__all__) - headings == set()  # the app authors' namespace too
    # documented, not only named: the facade's docstring and its methods are on the page
    assert "from_pretrained" in page and 'id="prefpaint_sdk.inpainter.Inpainter.__call__"' in page


# ------------------------------------------------------------------------------- commands named in the docs
def _shell_commands() -> list[tuple[str, list[str]]]:
    """(page, argv) of every `prefpaint ...` line (or `-m prefpaint_cli.main ...`) in the docs' shell blocks."""
    found = []
    for md in sorted(DOCS.rglob("*.md")):
        for lang, body in re.findall(r"^```(\w*)\n(.*?)^```", md.read_text(), re.S | re.M):
            if lang not in ("bash", "sh", "shell", "console"):
                continue
            for line in body.replace("\\\n", " ").splitlines():
                line = line.split(" #", 1)[0].strip()
                try:
                    words = shlex.split(line.split("&&")[-1].split("|")[0])
                except ValueError:
                    continue
                for i, word in enumerate(words):
                    if word.endswith("/prefpaint") or word == "prefpaint":
                        found.append((md.relative_to(DOCS).as_posix(), words[i + 1:]))
                        break
                    if word == "prefpaint_cli.main" and i and words[i - 1] == "-m":
                        found.append((md.relative_to(DOCS).as_posix(), words[i + 1:]))
                        break
    return found


def _problems(commands: list[tuple[str, list[str]]]) -> tuple[list[str], set[str]]:
    """Each command line that names a command or an option the CLI does not have; and the commands seen."""
    import typer.main
    from prefpaint_cli.main import app

    problems, seen = [], set()
    for page, argv in commands:
        cmd, path = typer.main.get_command(app), []
        while hasattr(cmd, "commands"):  # a group (typer vendors its own click: no isinstance)
            if not argv or argv[0] not in cmd.commands:
                problems.append(f"{page}: 'prefpaint {' '.join(path + argv[:1])}' is no command")
                break
            path.append(argv[0])
            cmd, argv = cmd.commands[argv[0]], argv[1:]
        else:
            seen.add(" ".join(path))
            options = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
            problems += [f"{page}: 'prefpaint {' '.join(path)}' has no option {word}" for word in argv
                         if word.startswith("-") and word != "-" and word.split("=", 1)[0] not in options]
    return problems, seen


def test_docs_name_only_commands_and_options_that_exist():
    commands = _shell_commands()
    assert len(commands) >= 30  # the parser found the pages' commands
    problems, seen = _problems(commands)
    assert problems == []
    # every command of the CLI is shown somewhere in the docs
    assert {"inpaint", "score", "train align", "train reward", "extend", "recon3d", "eval", "serve", "rate",
            "generate-dataset", "masks generate", "convert-reward", "download", "doctor"} <= seen


def test_a_misnamed_command_or_option_is_caught(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "DOCS", tmp_path)
    (tmp_path / "x.md").write_text("```bash\nprefpaint inpaint a.png b.png -o c.png\nprefpaint paint a.png  # typo\n"
                                   "prefpaint train algin --data d\nprefpaint score a.png b.png --jsn\n```\n")
    problems, seen = _problems(_shell_commands())
    assert seen == {"inpaint", "score"}
    assert problems == ["x.md: 'prefpaint paint' is no command", "x.md: 'prefpaint train algin' is no command",
                        "x.md: 'prefpaint score' has no option --jsn"]

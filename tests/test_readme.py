"""The README is a short front door whose every statement can be checked: at most 250 lines, links that
resolve, an extras table that matches pyproject.toml (the docs' copy too), and every measured figure taken from
benchmarks/RESULTS.md."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# a requirement whose distribution name the table spells otherwise
SPELLED = {"mkdocs-material": "material", "mkdocstrings-python": "mkdocstrings"}


def _prose(text: str) -> str:
    """The text outside fenced code blocks and inline code."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def test_readme_is_short():
    assert len(README.read_text().splitlines()) <= 250


def _extras_table(text: str) -> dict[str, str]:
    """{extra: its row} of the table whose header is `| extra | adds | needed by |`."""
    header = text.index("| extra | adds | needed by |")
    rows = {}
    for line in text[header:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        m = re.match(r"\|\s*`([\w-]+)`\s*\|", line)
        assert m, line
        rows[m.group(1)] = line
    return rows


@pytest.mark.parametrize("page", ["README.md", "docs/index.md"])
def test_extras_table_matches_pyproject(page):
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    rows = _extras_table((ROOT / page).read_text())
    assert set(rows) == set(extras)
    for extra, requirements in extras.items():
        for req in requirements:
            name = re.match(r"[A-Za-z0-9_.-]+", req).group(0).lower()
            assert SPELLED.get(name, name) in rows[extra].lower(), f"{page}: the {extra} row does not name {name}"


def test_a_missing_extra_row_is_caught():
    table = "| extra | adds | needed by |\n|---|---|---|\n| `train` | tensorboard | x |\n\nafter\n"
    assert _extras_table(table) == {"train": "| `train` | tensorboard | x |"}


def test_readme_links_resolve():
    text = README.read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        assert (ROOT / path).exists(), target
        if anchor:
            headings = re.findall(r"^#+ (.+)$", _prose((ROOT / path).read_text()), re.M)
            slugs = {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}
            assert anchor in slugs, target


def test_readme_figures_come_from_results():
    """Every measured figure in the README's prose (a decimal, a ratio such as 0.97x, a time such as 7 min 4 s)
    is on the results page, where its machine, date and method are."""
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text().replace("−", "-")
    prose = _prose(README.read_text())
    prose = re.sub(r"\]\([^)]*\)", "]", prose)  # link targets
    prose = re.sub(r"arXiv [\d.]+", "", prose)  # the paper's id
    # versions, which are not measurements: "Python 3.11", "open3d (< 0.20", "(3.10 is not supported)"
    prose = re.sub(r"(?:Python|<)\s*\d+(?:\.\d+)+|\d+\.\d+ is not supported", "", prose)
    figures = set(re.findall(r"\d+(?:\.\d+)?x|\d+\.\d+(?: dB| GiB)?|\d+ min \d+ s|\d+ of \d+", prose))
    assert len(figures) >= 8  # the pattern found the figures
    missing = {f for f in figures if f not in results and f.rstrip("x") not in results}
    assert missing == set()

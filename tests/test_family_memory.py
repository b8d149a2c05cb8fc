"""docs/families.md's memory table: its parameter counts are those of the published configs built on ``meta``
(``benchmarks/family_memory.py``, which generated it), for every family."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # builds seven real-size pipelines on meta (about 10 CPU-seconds)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def _rows() -> dict[str, list[str]]:
    text = (ROOT / "docs" / "families.md").read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\| `([a-z0-9-]+)` \| ([\d,]+) \((unet|transformer)\) \|", line)
        if m:
            rows[m.group(1)] = [c.strip() for c in line.strip("|").split("|")]
    return rows


def test_the_table_lists_every_family_with_its_meta_counts():
    import family_memory

    from prefpaint_sdk.engines import FAMILIES

    rows = _rows()
    assert set(FAMILIES) <= set(rows) and set(rows) == set(family_memory.FAMILIES)
    for family in family_memory.FAMILIES:
        c = family_memory.counts(family)
        cells = rows[family]
        assert int(cells[1].split(" ")[0].replace(",", "")) == c["denoiser"], family
        assert cells[1].endswith(f"({c['denoiser_name']})")
        assert int(cells[2].replace(",", "")) == c["text"] and int(cells[3].replace(",", "")) == c["vae"], family
        m = family_memory.memory(c)
        assert cells[4] == f"{m['inference']:.1f} GiB" and cells[6] == f"{m['full']:.1f} GiB", family
        assert cells[8] == f"{family_memory.memory(c, 8)['full']:.1f} GiB", family

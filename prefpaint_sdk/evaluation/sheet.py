"""``contact_sheet.png``: one image that summarises an evaluation for a paper or an issue.

Top: the WinRate with its interval for each S. Below: the ``per_side`` biggest wins, then the
``per_side`` biggest losses, at the largest S (each case appears once; with few cases, all of them).
Each row shows the input with the mask tinted, the baseline's sample and the model's best-of-S sample,
captioned with their rewards.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ..files import save_image

__all__ = ["write_contact_sheet"]

_BG, _FG, _WIN, _LOSS = (255, 255, 255), (20, 20, 20), (26, 127, 55), (198, 40, 40)
_LINE = 14  # text line height of PIL's default bitmap font, with spacing


def _tile(path: Path, tile: int) -> Image.Image:
    with Image.open(path) as im:
        im = im.convert("RGB")
        # Fit the tile both ways: small evaluation images are enlarged so a reader can see the hole.
        scale = tile / max(im.size)
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        im = im.resize(size, Image.LANCZOS if scale < 1 else Image.NEAREST)
    canvas = Image.new("RGB", (tile, tile), (235, 235, 235))
    canvas.paste(im, ((tile - im.width) // 2, (tile - im.height) // 2))
    return canvas


def _short(model_id, keep: int = 40) -> str:
    s = str(model_id)
    return s if len(s) <= keep else "..." + s[-(keep - 3):]


def _select(report, per_side: int) -> tuple[list[dict], list[dict]]:
    smax = report.samples[-1]
    ordered = sorted(report.cases, key=lambda c: -report.score_diff(c, smax))
    if len(ordered) <= 2 * per_side:
        wins = [c for c in ordered if report.score_diff(c, smax) >= 0]
        return wins, [c for c in ordered if report.score_diff(c, smax) < 0][::-1]
    return ordered[:per_side], ordered[::-1][:per_side]


def write_contact_sheet(report, path: Path, *, per_side: int = 4, tile: int = 160) -> Path:
    """Draw the contact sheet of ``report`` into ``path`` (PNG, written atomically).

    Args:
        report: an :class:`~prefpaint_sdk.evaluation.EvalReport` with its image folder.
        path: the PNG to write.
        per_side: how many wins and how many losses to show.
        tile: tile size in pixels.

    Returns:
        ``path``.
    """
    font = ImageFont.load_default()
    smax = report.samples[-1]
    wins, losses = _select(report, per_side)
    pad, cap = 8, 2 * _LINE + 4
    cols = 3
    width = pad + cols * (tile + pad)
    header = [f"{_short(report.config.get('model'))} vs {_short(report.config.get('baseline'))}: {len(report.cases)} cases"]
    for r in report.rows():
        header.append(f"S={r['S']}: WinRate {r['win_rate'] * 100:.1f}% [{r['ci_low'] * 100:.1f}, {r['ci_high'] * 100:.1f}]"
                      f"  reward {r['mean_reward']:.3f}")
    sections = [(f"highest score differences at S={smax} (biggest wins)", wins),
                (f"lowest score differences at S={smax} (biggest losses)", losses)]
    sections = [(t, cs) for t, cs in sections if cs]
    height = pad + len(header) * _LINE + pad
    for _, cs in sections:
        height += _LINE + pad + len(cs) * (tile + cap + pad)
    width = max(width, pad + 7 * max(len(h) for h in header))  # the default font is about 6-7 px per glyph
    sheet = Image.new("RGB", (width, height), _BG)
    draw = ImageDraw.Draw(sheet)
    y = pad
    for line in header:
        draw.text((pad, y), line, fill=_FG, font=font)
        y += _LINE
    y += pad
    for title, cs in sections:
        draw.text((pad, y), title, fill=_FG, font=font)
        y += _LINE + pad
        for c in cs:
            i = report.pick(c, smax)
            d = report.score_diff(c, smax)
            cells = [
                (c["files"]["overlay"], [c["name"][:24], c["mask_kind"]], _FG),
                (c["baseline"]["file"], ["baseline", f"{c['baseline']['score']:.4f}"], _FG),
                (c["model"]["files"][i], [f"best of {smax}", f"{c['model']['scores'][i]:.4f} ({d:+.3f})"],
                 _WIN if d > report.tie_tolerance else (_LOSS if d < -report.tie_tolerance else _FG)),
            ]
            for j, (rel, lines, colour) in enumerate(cells):
                x = pad + j * (tile + pad)
                sheet.paste(_tile(report._image_path(rel), tile), (x, y))
                for n, text in enumerate(lines):
                    draw.text((x, y + tile + 2 + n * _LINE), text, fill=colour, font=font)
            y += tile + cap + pad
    save_image(sheet, path, overwrite=True)
    return path

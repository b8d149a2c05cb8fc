"""Messages in the current command's terms: an SDK error names Python parameters and may advise ``--flags``;
:func:`cli_text` maps the names to the printing command's options and drops advice about a flag it lacks.
"""

from __future__ import annotations

import re

__all__ = ["PARAM_ALIASES", "cli_text", "flag_of"]

# Python names the SDK uses for values whose CLI option has another name.
PARAM_ALIASES = {"guidance_scale": "guidance", "learning_rate": "lr", "num_steps": "steps", "depth_dir": "depth",
                 "out_dir": "output", "masks": "mask", "masked_images": "masked_image"}


def _current_context():
    try:
        from typer._click.globals import get_current_context  # typer ≥ 0.22 vendors click
    except ImportError:  # pragma: no cover - older typer uses click itself
        from click import get_current_context
    return get_current_context(silent=True)


# ---- the rewriting --------------------------------------------------------------------------------
_FLAG = re.compile(r"(?<![\w-])--[a-z0-9][a-z0-9-]*")


def flag_of(param) -> str:
    opts = [o for o in list(getattr(param, "opts", [])) if o.startswith("--")]
    if opts:
        return max(opts, key=len)
    opts = list(getattr(param, "opts", []))
    return opts[0] if opts else param.name


def _command_options(ctx) -> tuple[set[str], dict[str, str]]:
    flags: set[str] = set()
    by_name: dict[str, str] = {}
    while ctx is not None:
        for p in ctx.command.params:
            flags.update(getattr(p, "opts", []))
            flags.update(getattr(p, "secondary_opts", []))
            if any(o.startswith("-") for o in getattr(p, "opts", [])):
                by_name[p.name] = flag_of(p)
        ctx = ctx.parent
    flags.update({"--help", "-h"})
    return flags, by_name


def cli_text(message: str, param: str | None = None, ctx=None) -> str:
    """``message`` in the current command's terms.

    * ``name=VALUE (--flag)`` becomes ``--flag`` (``--flag VALUE``) when the command has ``--flag``;
      ``--flag (name=VALUE)`` becomes ``--flag``.
    * A ``;``-separated clause that suggests a flag the command lacks is dropped (in the first clause the
      flag is replaced by its Python name, since that clause says what was wrong).
    * ``param`` (the error's Python name) at the start of the message becomes the command's flag.
    """
    ctx = ctx or _current_context()
    if ctx is None:
        return message
    flags, by_name = _command_options(ctx)

    def has(flag: str) -> bool:
        return flag in flags

    def py_then_flag(m: re.Match) -> str:
        value, flag = m.group(2), m.group(3)
        if not has(flag):
            return m.group(0)
        return flag if value in ("True", "true") else f"{flag} {value}"

    message = re.sub(r"\b([a-z_][a-z0-9_]*)=(\S+?) \((--[a-z0-9-]+)\)", py_then_flag, message)
    message = re.sub(r"(--[a-z0-9-]+) \(([a-z_][a-z0-9_]*=[^)\s]+)\)",
                     lambda m: m.group(1) if has(m.group(1)) else m.group(0), message)
    clauses = message.split("; ")
    kept = [clauses[0]]
    for clause in clauses[1:]:
        if all(has(f) for f in _FLAG.findall(clause)):
            kept.append(clause)
    # "raise max_pixels (--max-pixels)" -> "raise --max-pixels"; without the flag, the Python name stays.
    kept[0] = re.sub(r"\b([a-z_][a-z0-9_]*) \((--[a-z0-9-]+)\)",
                     lambda m: m.group(2) if has(m.group(2)) else m.group(1), kept[0])
    kept[0] = re.sub(r" \((--[a-z0-9-]+)\)", lambda m: m.group(0) if has(m.group(1)) else "", kept[0])
    kept = [kept[0]] + [re.sub(r"\b([a-z_][a-z0-9_]*) \((--[a-z0-9-]+)\)", r"\2", c) for c in kept[1:]]
    kept[0] = _FLAG.sub(lambda m: m.group(0) if has(m.group(0)) else m.group(0)[2:].replace("-", "_"), kept[0])
    kept[0] = re.sub(r" \((?:pass )?[a-z_][a-z0-9_]*=[^)\s]+ \(?(--[a-z0-9-]+)\)?\)",
                     lambda m: "" if not has(m.group(1)) else m.group(0), kept[0])
    message = "; ".join(kept)
    # The value the message is about, named first ("steps must be ≥ 1"), is named by its flag.
    lead = re.match(r"^([a-z_][a-z0-9_]*)(?= (?:must|should|needs|cannot)\b)", message)
    if lead or param:
        word = lead.group(1) if lead else param
        name = word if word in by_name else PARAM_ALIASES.get(word)
        if name in by_name and message.startswith(word) and re.match(rf"^{re.escape(word)}\b(?![=(-])", message):
            message = by_name[name] + message[len(word):]
    return message

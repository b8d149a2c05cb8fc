"""MkDocs hooks (mkdocs.yml `hooks:`): the API page follows ``prefpaint_sdk.__all__`` and
``prefpaint_sdk.utils.__all__``, and the benchmark results
(``benchmarks/RESULTS.md``, outside the docs folder) and the README's pictures are pages of the site.

The API page is generated rather than written so that it cannot drift from the public names: a name added to
``__all__`` appears on the page, and a removed one cannot leave a broken ``:::`` directive behind. Every name
is rendered by mkdocstrings from its docstring; ``mkdocs build --strict`` fails on one it cannot resolve.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
# the namespaces the API page documents, each behind its placeholder
NAMESPACES = ("prefpaint_sdk", "prefpaint_sdk.utils")
# submodule of prefpaint_sdk -> section of the API page, in page order; others go under "More".
SECTIONS = {
    "inpainter": "Inpainting", "inpaint_result": "Inpainting", "batch": "Inpainting",
    "reward": "Rewards", "align": "Alignment", "evaluation": "Evaluation", "jobs": "Jobs across processes",
    "hub": "Models and the cache", "engines": "Models and the cache",
    "imaging": "Images and masks", "masks": "Images and masks",
    "errors": "Errors", "files": "Output files", "validation": "Value checks",
}
# the app authors' namespace names its sections for what an app uses them for
UTILS_SECTIONS = {"files": "Output files", "validation": "Value checks", "errors": "Optional dependencies",
                  "imaging": "Images", "batch": "Input folders"}
PICTURES = ("examples/data/serve_page.png", "examples/data/eval_contact_sheet.png")


def defining_path(package: str, name: str) -> str:
    """Where ``package.name`` is defined, following the packages' lazy-export tables (``_EXPORTS``/``_LAZY``,
    renamed by ``_ALIASES``) without importing the leaf modules, which would pull in torch. mkdocstrings reads
    source statically and cannot see through a module ``__getattr__``."""
    module = importlib.import_module(package)
    table = getattr(module, "_EXPORTS", None) or getattr(module, "_LAZY", None) or {}
    if name not in table:
        return f"{package}.{name}"
    relative = table[name] if table[name].startswith(".") else "." + table[name]
    target = importlib.util.resolve_name(relative, package)
    name = getattr(module, "_ALIASES", {}).get(name, name)
    spec = importlib.util.find_spec(target)
    if spec is not None and spec.submodule_search_locations:
        return defining_path(target, name)
    return f"{target}.{name}"


def api_markdown(package: str = "prefpaint_sdk") -> str:
    module = importlib.import_module(package)
    exports = getattr(module, "_EXPORTS", {})
    sections = SECTIONS if package == "prefpaint_sdk" else UTILS_SECTIONS
    groups: dict[str, list[str]] = {title: [] for title in dict.fromkeys(sections.values())}
    for name in module.__all__:
        if name.startswith("__"):
            continue
        groups.setdefault(sections.get(exports.get(name, "").lstrip("."), "More"), []).append(name)
    parts = []
    for title, names in groups.items():
        if names:
            parts.append(f"## {title}\n" if package == "prefpaint_sdk" else f"## {package}: {title.lower()}\n")
            for name in names:
                path = defining_path(package, name)
                # A name exported under another name than its definition's is shown as the user imports it.
                heading = "" if path.endswith("." + name) else f'    options:\n      heading: "{name}"\n'
                parts.append(f"::: {path}\n{heading}")
    return "\n".join(parts)


def on_files(files, config):
    files.append(File.generated(config, "results.md", abs_src_path=str(ROOT / "benchmarks" / "RESULTS.md")))
    # the plots RESULTS.md links beside it, at the same relative place, so its links resolve on the site too
    for plot in sorted((ROOT / "benchmarks").glob("*.png")):
        files.append(File.generated(config, plot.name, abs_src_path=str(plot)))
    for picture in PICTURES:
        files.append(File.generated(config, "img/" + Path(picture).name, abs_src_path=str(ROOT / picture)))
    return files


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri == "api.md":
        for package in NAMESPACES:
            markdown = markdown.replace(f"<!-- api: {package}.__all__ -->", api_markdown(package))
    return markdown

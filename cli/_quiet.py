"""Quiet libraries: no "Loading weights" or "Writing model shards" bars from diffusers, transformers or the hub.

Kept free of heavy imports: the bars of libraries not yet imported are switched off right after their
first import (a meta-path hook), so ``prefpaint --help`` and commands that never load a model never import
torch.
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["after_import", "quiet_library_bars"]


def quiet_library_bars(keep_hub: bool) -> None:
    """No "Loading weights", "Writing model shards" or "Loading pipeline components" bars."""
    if not keep_hub:
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        if "huggingface_hub.utils" in sys.modules:
            sys.modules["huggingface_hub.utils"].disable_progress_bars()
    # transformers reads HF_HUB_DISABLE_PROGRESS_BARS when imported, but not for a hub download we keep.
    for name in ("transformers.utils.logging", "diffusers.utils.logging"):
        if name in sys.modules:
            sys.modules[name].disable_progress_bar()
        else:
            after_import(name, lambda module: module.disable_progress_bar())


class _AfterImport:
    """A meta-path finder that runs a function on a module right after it is first imported.

    Used to switch off diffusers' and transformers' own progress bars without importing them (and torch)
    at start-up: ``prefpaint extend --dry-run`` and ``masks generate`` never import them at all.
    """

    def __init__(self) -> None:
        self.hooks: dict[str, Any] = {}

    def find_spec(self, name, path, target=None):
        hook = self.hooks.pop(name, None)
        if hook is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                run = spec.loader.exec_module

                def exec_module(module, _run=run, _hook=hook):
                    _run(module)
                    try:
                        _hook(module)
                    except Exception:  # noqa: BLE001 - quieting a library is best effort
                        pass

                spec.loader.exec_module = exec_module
                return spec
        return None


_AFTER_IMPORT = _AfterImport()


def after_import(name: str, hook) -> None:
    _AFTER_IMPORT.hooks[name] = hook
    if _AFTER_IMPORT not in sys.meta_path:
        sys.meta_path.insert(0, _AFTER_IMPORT)

"""The toolkit for app authors: output files written whole, value checks, optional imports, image helpers.

An app (``apps/``, or your own) imports two namespaces only: :mod:`prefpaint_sdk` for what a user calls, and this
one for the plumbing an app needs to behave like the built-in commands:

- **output files:** refuse an existing output without ``overwrite``, write to a temporary name and rename, an
  item's whole output set (image, candidates, sidecar) or none of it (``check_output_path``, ``write_set``, ...);
- **value checks** that raise :class:`~prefpaint_sdk.InvalidInputError` naming the parameter (``finite``,
  ``positive``, ``at_least``, ``check_seed``, ``bad_value``);
- **a reward stack's checks** before any model loads (``check_stack``: names, weights, files, servers);
- **optional dependencies:** ``require("open3d", extra="recon3d")`` imports a module or raises
  :class:`~prefpaint_sdk.MissingDependencyError` naming the extra to install;
- **images:** the pixel-limit check of a file before it is decoded, fitting a mask to its image, feathering,
  boxes, and pairing a folder of images with a folder of masks by stem.

>>> from prefpaint_sdk.utils import atomic_write_json, check_output_path, positive
>>> positive("steps", 4)
4

Names are imported lazily, as the top level's are.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# public name -> module that defines it, relative to this package
_EXPORTS = {
    # output files: checked before any model loads, written atomically, whole sets or nothing
    "check_output_path": "..files",
    "check_output_dir": "..files",
    "check_outputs": "..files",
    "check_image_suffix": "..files",
    "atomic_path": "..files",
    "atomic_write_json": "..files",
    "save_image": "..files",
    "sidecar_path": "..files",
    "staged_dir": "..files",
    "write_set": "..files",
    "image_writer": "..files",
    "json_writer": "..files",
    # value checks shared by the SDK, the apps and the CLI
    "finite": "..validation",
    "positive": "..validation",
    "at_least": "..validation",
    "check_seed": "..validation",
    "bad_value": "..validation",
    # optional dependencies
    "require": "..errors",
    # a reward stack's checks (names, weights, files, servers) before any model loads
    "check_stack": "..reward.choice",
    # error messages in the caller's terms: a parameter (and its fix) as data, advice a front end may leave out
    "Arg": "..errors",
    "Hint": "..errors",
    "render": "..errors",
    # images
    "Box": "..imaging",
    "check_image_file": "..imaging",
    "fit_mask_to_image": "..imaging",
    "feather_alpha": "..imaging",
    # the data convention's one reader (images/ + masks/ by stem), for apps that read image folders
    "pair_inputs": "..data",
    "list_images": "..data",
    "find_image": "..data",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'prefpaint_sdk.utils' has no attribute '{name}'")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # static analysers and IDEs see the real names
    from ..data import find_image, list_images, pair_inputs  # noqa: F401
    from ..errors import Arg, Hint, render, require  # noqa: F401
    from ..files import (  # noqa: F401
        atomic_path,
        atomic_write_json,
        check_image_suffix,
        check_output_dir,
        check_output_path,
        check_outputs,
        image_writer,
        json_writer,
        save_image,
        sidecar_path,
        staged_dir,
        write_set,
    )
    from ..imaging import Box, check_image_file, feather_alpha, fit_mask_to_image  # noqa: F401
    from ..reward.choice import check_stack  # noqa: F401
    from ..validation import at_least, bad_value, check_seed, finite, positive  # noqa: F401

"""Safe outputs: never overwrite without permission, never leave a half-written file or output set.

Every output is written under a temporary name beside its destination and renamed into place:
- one file (:func:`atomic_path`, :func:`atomic_write_bytes`, :func:`atomic_write_json`, :func:`save_image`);
- a whole set of files (:func:`output_set`, :func:`write_set`): every member is written first, then all are
  renamed, so an image, its candidates and its sidecar appear together or not at all;
- a folder (:func:`staged_dir`): it is built in a stage beside ``dest`` and replaces ``dest`` whole.

A crash or Ctrl-C leaves either the old outputs or the new ones and no temporary names. Every file and
folder gets its mode from the user's umask (0644/0755 under umask 022), as a plain ``open`` would give:
``mkstemp``/``mkdtemp`` alone would leave them private (0600/0700).

Check the whole output set before any work starts with :func:`check_outputs` (files) and
:func:`check_output_dir` (a folder). Errors name the user's path, never a temporary one, and raise
:class:`~prefpaint_sdk.errors.InvalidInputError` (exit code 2) rather than an ``OSError`` traceback.

The package has four rooms: :mod:`.checks` (before work), :mod:`.sets` (files and output sets),
:mod:`.folders` (staged folders) and :mod:`.modes` (umask); :mod:`.readers` holds the safe readers of
foreign files. Import from ``prefpaint_sdk.files``.
"""

from __future__ import annotations

import os  # noqa: F401 - tests patch os functions through this module

from .checks import check_image_suffix, check_output_dir, check_output_path, check_outputs
from .folders import atomic_dir, replace_dir, staged_dir
from .modes import apply_umask_modes, dir_mode, file_mode
from .readers import load_npy, load_torch_file, read_toml_table
from .sets import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    bytes_writer,
    image_writer,
    json_writer,
    output_set,
    save_image,
    sidecar_path,
    strict_json_dumps,
    write_set,
)

__all__ = [
    "apply_umask_modes",
    "atomic_dir",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "bytes_writer",
    "check_image_suffix",
    "check_output_dir",
    "check_output_path",
    "check_outputs",
    "dir_mode",
    "file_mode",
    "image_writer",
    "json_writer",
    "load_npy",
    "load_torch_file",
    "output_set",
    "read_toml_table",
    "replace_dir",
    "save_image",
    "sidecar_path",
    "staged_dir",
    "strict_json_dumps",
    "write_set",
]


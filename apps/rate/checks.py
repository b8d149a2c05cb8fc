"""The rating loop's front door: :func:`validate`, the checks that read no dataset."""

from __future__ import annotations

import os
from pathlib import Path

from prefpaint_sdk import InvalidInputError
from prefpaint_sdk.utils import Arg

__all__ = ["validate"]


def validate(data: str | os.PathLike, files=(), *, do_import: bool = False) -> None:
    """``data`` is a folder; ratings files only to import (:func:`~.merge.import_ratings`), and at least one
    then. :func:`~.page.write_rating_page` and :func:`~.merge.import_ratings` call it first, as the CLI does.

    Raises:
        InvalidInputError: naming the path or the parameter.
    """
    if not Path(data).is_dir():
        raise InvalidInputError(f"dataset folder '{data}' does not exist or is not a folder; pass DATA")
    if files and not do_import:
        raise InvalidInputError(f"'{files[0]}' is a ratings file: pass ", Arg("do_import", True), " to merge it")
    if do_import and not files:
        raise InvalidInputError("pass at least one ratings file to import (the page's export)")

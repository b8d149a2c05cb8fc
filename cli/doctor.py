"""``prefpaint doctor``: what is installed, which device would be used, which models are cached."""

from __future__ import annotations

import typer

from ._common import console, handle_errors, say_ok, setup


def doctor(
    smoke: bool = typer.Option(False, "--smoke", help="Also run a real inpaint end to end, offline, on a tiny random model."),
    family: list[str] = typer.Option([], "--family", help="Smoke-test only this family (repeatable; default: every family)."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Print versions, device, cache folder and cached default models; --smoke proves the install works."""
    setup(debug=debug)
    with handle_errors(debug):
        from rich.table import Table
        from rich.text import Text

        from prefpaint_sdk.diagnostics import environment_report, smoke_test

        report = environment_report()
        table = Table(title="prefpaint doctor", show_header=False)
        # a long path wraps in a narrow terminal instead of being cut to "...": doctor is read for its paths
        table.add_column(overflow="fold")
        table.add_column(overflow="fold")
        for key, value in report.items():
            table.add_row(Text(key), Text(str(value)))
        console.print(table)
        if smoke:
            with console.status("smoke test: tiny random model, offline", spinner="dots"):
                facts = smoke_test(families=tuple(family) or None)
            say_ok(f"smoke test passed: {facts}")

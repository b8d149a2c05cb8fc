"""The ``prefpaint`` command line (import name ``prefpaint_cli``): parse, call the SDK, report."""

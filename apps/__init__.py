"""PrefPaint applications built on the public ``prefpaint_sdk`` API (import name ``prefpaint_apps``)."""

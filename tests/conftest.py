"""Test session set-up: offline, no network, tiny models built once per session."""

from __future__ import annotations

import os

# Before anything imports huggingface_hub: no test may reach the hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import socket  # noqa: E402

import pytest  # noqa: E402

_LOOPBACK = ("127.", "::1", "localhost", "0.0.0.0")
_real_connect = socket.socket.connect


def _guarded_connect(self, address):
    # Loopback stays allowed (torch.distributed's gloo rendezvous); anything else is a bug in a test.
    host = address[0] if isinstance(address, tuple) else str(address)
    if self.family in (socket.AF_INET, socket.AF_INET6) and not str(host).startswith(_LOOPBACK):
        raise RuntimeError(f"test tried to reach the network: {address!r}")
    return _real_connect(self, address)


socket.socket.connect = _guarded_connect


def pytest_configure(config):
    # Tiny models gain nothing from intra-op threads, and on a shared 2-core machine oversubscription
    # made single calls 10-20x slower. Subprocess tests set their own.
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_pipeline_dir(tmp_path_factory):
    """A tiny random diffusers inpainting pipeline saved as a folder, as real weights are."""
    from prefpaint_sdk.testing import save_tiny_inpaint_pipeline

    return save_tiny_inpaint_pipeline(tmp_path_factory.mktemp("models") / "tiny-inpaint", seed=0)


@pytest.fixture(scope="session")
def tiny_inpainter(tiny_pipeline_dir):
    """An ``Inpainter`` over the tiny pipeline, loaded through ``from_pretrained`` like the real model."""
    from prefpaint_sdk import Inpainter

    return Inpainter.from_pretrained(tiny_pipeline_dir, device="cpu", dtype="float32")

"""Trust maths: float64 streaming ridge, both norms, weight, official V_inverse, persistence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prefpaint_sdk.errors import InvalidInputError
from prefpaint_sdk.reward import TrustStats, fit_trust, load_official_v_inverse, trust_weight


def test_fit_trust_matches_numpy_closed_form_ridge():
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(500, 8)).astype(np.float32)
    lam = 0.01
    stats = fit_trust((Z[i:i + 64] for i in range(0, 500, 64)), lam=lam)  # streamed in batches
    Zd = Z.astype(np.float64)
    V = Zd.T @ Zd + lam * np.eye(8)
    Vinv = np.linalg.inv(V)
    np.testing.assert_allclose(stats.v.numpy(), V, rtol=1e-12)
    np.testing.assert_allclose(stats.v_inv.numpy(), Vinv, rtol=1e-9, atol=1e-12)
    assert stats.count == 500 and stats.v_inv.dtype == torch.float64
    q = rng.normal(size=(5, 8))
    np.testing.assert_allclose(stats.bound(q).numpy(), np.linalg.norm(q @ Vinv, axis=1), rtol=1e-9)
    np.testing.assert_allclose(stats.bound(q, norm="mahalanobis").numpy(),
                               np.sqrt(np.einsum("nd,de,ne->n", q, Vinv, q)), rtol=1e-9)
    # the bound is the ridge-regression prediction's uncertainty: its square (textbook norm) equals the
    # variance factor of the closed-form ridge estimate psi_hat = V^-1 Z^T y at q
    y = Zd @ rng.normal(size=8)
    psi = np.linalg.solve(V, Zd.T @ y)
    np.testing.assert_allclose(q @ psi, q @ (stats.v_inv.numpy() @ (Zd.T @ y)), rtol=1e-8)


def test_bound_grows_far_from_the_training_data():
    rng = np.random.default_rng(1)
    basis = np.linalg.qr(rng.normal(size=(16, 16)))[0]
    Z = rng.normal(size=(400, 4)) @ basis[:4]  # data lives in a 4-d subspace
    stats = fit_trust(Z, lam=0.01)
    near = rng.normal(size=(50, 4)) @ basis[:4]
    far = rng.normal(size=(50, 4)) @ basis[4:8]  # same norm distribution, orthogonal to the data
    for norm in ("paper", "mahalanobis"):
        assert stats.bound(far, norm=norm).min() > 10 * stats.bound(near, norm=norm).max()
    w_near, w_far = stats.weight(near), stats.weight(far)
    assert (w_far <= w_near).all() and w_far.min() == 1.0


def test_trust_weight_exact_values_and_clamp():
    b = torch.tensor([0.0, 1.0, 10.0, 100.0], dtype=torch.float64)
    expected = np.clip(np.exp(-0.05 * b.numpy() + 0.7), 1.0, 2.21)
    np.testing.assert_allclose(trust_weight(b).numpy(), expected, rtol=1e-12)
    assert trust_weight(torch.tensor([-100.0])).item() == pytest.approx(2.21)
    with pytest.raises(InvalidInputError, match="lo <= hi"):
        trust_weight(b, lo=3.0, hi=2.0)


def test_fit_trust_rejects_bad_input():
    with pytest.raises(InvalidInputError, match="no embeddings"):
        fit_trust([])
    with pytest.raises(InvalidInputError, match="lam"):
        fit_trust(np.zeros((3, 4)), lam=0.0)
    with pytest.raises(InvalidInputError, match="norm"):
        TrustStats(v_inv=torch.eye(2, dtype=torch.float64), norm="l1")


def test_trust_save_load_round_trip(tmp_path):
    stats = fit_trust(np.random.default_rng(2).normal(size=(20, 6)), lam=0.1, norm="mahalanobis", k=0.1)
    loaded = TrustStats.load(stats.save(tmp_path / "trust.safetensors"))
    assert torch.equal(loaded.v_inv, stats.v_inv) and torch.equal(loaded.v, stats.v)
    assert (loaded.lam, loaded.count, loaded.norm, loaded.k) == (0.1, 20, "mahalanobis", 0.1)


def test_official_v_inverse_loads(official_v_inverse):
    stats = load_official_v_inverse(official_v_inverse)
    assert stats.v_inv.shape == (256, 256) and stats.v_inv.dtype == torch.float64
    assert torch.equal(stats.v_inv, stats.v_inv.T)
    eig = torch.linalg.eigvalsh(stats.v_inv)
    assert 0.005 < eig[0] < 0.02 and 90 < eig[1] and eig[-1] < 110  # one ~0.01, the rest near 100
    z = torch.randn(4, 256, generator=torch.Generator().manual_seed(0))
    raw = torch.load(official_v_inverse, map_location="cpu", weights_only=True).double()
    torch.testing.assert_close(stats.bound(z), torch.linalg.vector_norm(z.double() @ raw, dim=1), rtol=1e-4, atol=0)


def test_official_v_inverse_rejects_wrong_shapes(tmp_path):
    p = tmp_path / "v.pt"
    torch.save(torch.zeros(3, 4), p)
    with pytest.raises(InvalidInputError, match="square"):
        load_official_v_inverse(p)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_v_inverse_is_a_data_error_naming_the_file(tmp_path, bad):
    from prefpaint_sdk.errors import DataError

    m = torch.eye(4)
    m[1, 2] = bad
    path = tmp_path / "V_inverse.pt"
    torch.save(m, path)
    with pytest.raises(DataError, match=r"V_inverse\.pt' holds a V\^-1 with 1 NaN or infinite entries of 16"):
        load_official_v_inverse(path)
    stats = TrustStats(v_inv=m.double())
    stats.save(tmp_path / "trust.safetensors")
    with pytest.raises(DataError, match=r"trust\.safetensors' holds a V\^-1 with 1 NaN"):
        TrustStats.load(tmp_path / "trust.safetensors")


def test_truncated_trust_file_is_a_corrupt_file_error(tmp_path):
    from prefpaint_sdk.errors import CorruptFileError

    fit_trust(np.eye(3), lam=0.01).save(tmp_path / "trust.safetensors")
    data = (tmp_path / "trust.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.safetensors").write_bytes(b"")
    for name in ("cut", "empty"):
        with pytest.raises(CorruptFileError, match=rf"trust file '.*{name}\.safetensors' is truncated or not a safetensors file"):
            TrustStats.load(tmp_path / f"{name}.safetensors")

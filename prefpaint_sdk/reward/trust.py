"""The trust bound of the PrefPaint reward: how far a score can be trusted.

Read the reward as ``s = <z, psi>`` with ``z`` the 256-d reward embedding and ``psi`` the last layer's
weight. Fitting that last layer is ridge regression over the training embeddings ``Z``, with
``V = Z^T Z + lam I``. By the self-normalised bound (Abbasi-Yadkori et al. 2011, Thm 2) the error of
``z^T psi`` is at most ``||z||_{V^-1} * C``, so an embedding far from the training data gets a larger bound.

* ``norm="paper"`` (default): ``b(z) = ||z^T V^-1||_2``, the PrefPaint paper's and code's definition.
* ``norm="mahalanobis"``: ``b(z) = sqrt(z^T V^-1 z)``, the textbook weighted norm.

The trust weight used to weight RL samples is ``gamma = clamp(exp(-k b + beta), lo, hi)`` with the paper's
defaults ``k = 0.05``, ``beta = 0.7``, ``lo = 1.0``, ``hi = 2.21``.

All maths is in float64 on the CPU: V is accumulated batch by batch (:class:`TrustAccumulator`), so the
whole embedding matrix never has to be in memory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import Arg, CorruptFileError, DataError, InvalidInputError
from ..files import load_torch_file

__all__ = [
    "TRUST_NORMS",
    "TrustAccumulator",
    "TrustStats",
    "fit_trust",
    "check_trust_matrix",
    "load_official_v_inverse",
    "trust_bound",
    "trust_weight",
]

TRUST_NORMS = ("paper", "mahalanobis")
TRUST_FILE = "trust.safetensors"


def trust_bound(z, v_inv, norm: str = "paper"):
    """Bound ``b(z)`` for embeddings ``z`` (N, D) given ``V^-1`` (D, D); float64 tensor (N,)."""
    import torch

    if norm not in TRUST_NORMS:
        raise InvalidInputError(f"trust norm must be one of {TRUST_NORMS}, got '{norm}'")
    z = torch.as_tensor(z).detach().to("cpu", torch.float64)
    if z.ndim == 1:
        z = z.unsqueeze(0)
    v_inv = torch.as_tensor(v_inv).to("cpu", torch.float64)
    if z.shape[-1] != v_inv.shape[0]:
        raise InvalidInputError(f"embeddings have {z.shape[-1]} dims but the trust matrix is {tuple(v_inv.shape)}")
    zv = z @ v_inv
    if norm == "paper":
        return torch.linalg.vector_norm(zv, dim=-1)
    return (zv * z).sum(-1).clamp_min(0).sqrt()


def trust_weight(bound, k: float = 0.05, beta: float = 0.7, lo: float = 1.0, hi: float = 2.21):
    """``gamma = clamp(exp(-k * bound + beta), lo, hi)`` elementwise (tensor in, tensor out)."""
    import torch

    if lo > hi:
        raise InvalidInputError(f"trust weight clamp needs lo <= hi, got lo={lo} and hi={hi}")
    b = torch.as_tensor(bound)
    return torch.exp(-k * b + beta).clamp(lo, hi)


@dataclass
class TrustStats:
    """A fitted (or imported) trust matrix and the weight parameters, saved with the model.

    Attributes:
        v_inv: ``V^-1`` (D, D), float64.
        v: ``V`` itself when it was fitted here (lets training continue accumulating); ``None`` when imported.
        lam: the ridge ``lambda``. count: number of embeddings it was fitted on (0 when imported).
        norm: "paper" (``||z^T V^-1||``) or "mahalanobis" (``sqrt(z^T V^-1 z)``).
        k, beta, lo, hi: trust weight parameters. source: where the matrix came from.
    """

    v_inv: object
    v: object | None = None
    lam: float = 0.01
    count: int = 0
    norm: str = "paper"
    k: float = 0.05
    beta: float = 0.7
    lo: float = 1.0
    hi: float = 2.21
    source: str = "fitted"
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.norm not in TRUST_NORMS:
            raise InvalidInputError(f"trust norm must be one of {TRUST_NORMS}, got '{self.norm}'")

    @property
    def dim(self) -> int:
        return int(self.v_inv.shape[0])

    def bound(self, z, norm: str | None = None):
        """Bound for each embedding row of ``z``; float64 tensor (N,)."""
        return trust_bound(z, self.v_inv, norm or self.norm)

    def weight(self, z=None, *, bound=None):
        """Trust weight for embeddings ``z`` (or for precomputed bounds)."""
        if bound is None:
            bound = self.bound(z)
        return trust_weight(bound, self.k, self.beta, self.lo, self.hi)

    # ---- persistence (safetensors + JSON metadata) --------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        from safetensors.torch import save_file

        tensors = {"v_inv": self.v_inv.detach().cpu().contiguous()}
        if self.v is not None:
            tensors["v"] = self.v.detach().cpu().contiguous()
        meta = {k: v for k, v in asdict(self).items() if k not in ("v_inv", "v")}
        save_file(tensors, str(path), metadata={"trust": json.dumps(meta)})
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> TrustStats:
        """Read a saved trust file.

        Raises:
            CorruptFileError: the file is truncated, empty or not a trust file.
            DataError: the matrix holds NaN or infinity, or is not square.
        """
        from safetensors import safe_open

        fix = ("delete it, or refit the trust matrix (train the reward model again or pass ", Arg("v_inverse"), ")")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = json.loads((f.metadata() or {}).get("trust", "{}"))
                keys = set(f.keys())
                if "v_inv" not in keys:
                    raise CorruptFileError(f"trust file '{path}' has no 'v_inv' tensor; ", *fix)
                v_inv = f.get_tensor("v_inv")
                v = f.get_tensor("v") if "v" in keys else None
        except (CorruptFileError, FileNotFoundError):
            raise
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own types for a broken header
            raise CorruptFileError(f"trust file '{path}' is truncated or not a safetensors file ({exc}); ", *fix) from None
        if not isinstance(meta, dict):
            raise CorruptFileError(f"trust file '{path}' has unreadable metadata; ", *fix)
        check_trust_matrix(v_inv, path)
        if v is not None:
            check_trust_matrix(v, path, "V")
        return cls(v_inv=v_inv, v=v, **meta)


class TrustAccumulator:
    """Streams embeddings into ``V = lam I + sum_i z_i z_i^T`` in float64.

    Example:
        >>> acc = TrustAccumulator(256, lam=0.01)
        >>> for z in batches: acc.update(z)
        >>> stats = acc.finalize()
    """

    def __init__(self, dim: int, lam: float = 0.01):
        import torch

        if lam <= 0:
            raise InvalidInputError(f"trust lam must be > 0 (it keeps V invertible), got {lam}")
        self.lam = float(lam)
        self.v = torch.eye(dim, dtype=torch.float64) * self.lam
        self.count = 0

    def update(self, z) -> None:
        import torch

        z = torch.as_tensor(z).detach().to("cpu", torch.float64)
        if z.ndim == 1:
            z = z.unsqueeze(0)
        if z.ndim != 2 or z.shape[1] != self.v.shape[0]:
            raise InvalidInputError(f"embeddings of shape {tuple(z.shape)} do not match the trust dim {self.v.shape[0]}")
        self.v += z.T @ z
        self.count += int(z.shape[0])

    def finalize(self, **params) -> TrustStats:
        import torch

        # V is symmetric positive definite (lam > 0): invert through its Cholesky factor, then symmetrise.
        chol = torch.linalg.cholesky(self.v)
        v_inv = torch.cholesky_inverse(chol)
        v_inv = (v_inv + v_inv.T) / 2
        return TrustStats(v_inv=v_inv, v=self.v.clone(), lam=self.lam, count=self.count, **params)


def fit_trust(embeddings, lam: float = 0.01, **params) -> TrustStats:
    """Fit the trust matrix on training embeddings.

    Args:
        embeddings: an (N, D) tensor/array, or an iterable of (n, D) batches (streamed; never stacked).
        lam: ridge ``lambda`` (0.01 in the paper).
        params: ``norm``, ``k``, ``beta``, ``lo``, ``hi`` for :class:`TrustStats`.

    Returns:
        :class:`TrustStats` with ``V = Z^T Z + lam I`` and its inverse, both float64.
    """
    import numpy as np
    import torch

    if isinstance(embeddings, (torch.Tensor, np.ndarray)):
        batches: Iterable = [embeddings]
    else:
        batches = embeddings
    acc = None
    for z in batches:
        z = torch.as_tensor(z)
        if z.ndim == 1:
            z = z.unsqueeze(0)
        if acc is None:
            acc = TrustAccumulator(int(z.shape[-1]), lam)
        acc.update(z)
    if acc is None:
        raise InvalidInputError("fit_trust got no embeddings; pass an (N, D) array or a non-empty iterable of batches")
    return acc.finalize(**params)


def check_trust_matrix(matrix, source: str | os.PathLike, what: str = "V^-1"):
    """Refuse a trust matrix with NaN or infinite entries (the bound would be NaN for every image).

    Raises:
        DataError: names ``source`` (the file) and how many entries are not finite.
    """
    import torch

    m = torch.as_tensor(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise DataError(f"'{source}' holds a {what} of shape {tuple(m.shape)}; expected a square matrix such as 256x256")
    bad = int((~torch.isfinite(m)).sum())
    if bad:
        raise DataError(f"'{source}' holds a {what} with {bad} NaN or infinite entries of {m.numel()}; "
                        "it is damaged: use the official V_inverse.pt or refit the trust matrix")
    return matrix


def load_official_v_inverse(path: str | os.PathLike, **params) -> TrustStats:
    """Load the official ``V_inverse.pt`` (a 256x256 float32 tensor saved with ``torch.save``).

    It is loaded with ``weights_only=True`` and kept in float64. The official release used ``lam = 0.01``.
    """
    import torch

    p = Path(path)
    obj = load_torch_file(p, "V_inverse file", "pass the official checkpoint/V_inverse.pt")
    if isinstance(obj, dict) and len(obj) == 1:
        obj = next(iter(obj.values()))
    if not isinstance(obj, torch.Tensor) or obj.ndim != 2 or obj.shape[0] != obj.shape[1]:
        shape = tuple(obj.shape) if isinstance(obj, torch.Tensor) else type(obj).__name__
        raise InvalidInputError(f"'{p}' holds {shape}; expected a square V^-1 matrix such as 256x256")
    v_inv = obj.to(torch.float64)
    check_trust_matrix(v_inv, p)
    v_inv = (v_inv + v_inv.T) / 2  # stored in float32: symmetric only up to rounding
    params.setdefault("lam", 0.01)
    return TrustStats(v_inv=v_inv, v=None, count=0, source=f"official:{p.name}", **params)

"""Diffusion-DPO (Wallace et al. 2024, "Diffusion Model Alignment Using Direct Preference Optimization"):
its maths, as pure functions.

What it follows: the paper's Eq. 14,

    L = -log sigmoid( -beta T w(lambda_t) [ (||eps_w - eps_theta(x_w,t)||^2 - ||eps_w - eps_ref(x_w,t)||^2)
                                           - (||eps_l - eps_theta(x_l,t)||^2 - ||eps_l - eps_ref(x_l,t)||^2) ] )

as SalesforceAIResearch/DiffusionDPO ``train.py`` (read at its HEAD) computes it: the squared errors are
means over latent elements, ``T w(lambda_t)`` is folded into one constant, and the inside term is
``-0.5 * beta * (model_diff - ref_diff)`` with ``model_diff = err_w - err_l`` (beta = 2000-5000 for SD 1.5).
The winner and the loser of a pair share the timestep and the noise. The implicit-reward accuracy is the
share of pairs whose inside term is > 0, as in that code (at the start, policy = reference, it is 0).

What differs:

* **Any parameterisation.** The errors are the family's own training target against its prediction:
  noise for epsilon-prediction (SD, SDXL, as the paper), velocity ``eps - x0`` for flow matching (FLUX
  Fill, the "velocity form"). The functions below take those per-sample errors.
* **Masked.** The means run over the hole plus a ring (:mod:`..masked_loss`) by default.
* **A per-pair weight** (the trust weight of online pairs, 1 for rated pairs) multiplies each pair's loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..masked_loss import masked_mean

__all__ = ["DPOLoss", "dpo_loss", "squared_error"]


def squared_error(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) the mean of ``(pred - target)^2`` over each sample's (masked) elements."""
    return masked_mean((pred.float() - target.float()) ** 2, mask)


@dataclass
class DPOLoss:
    """The Diffusion-DPO loss and its diagnostics (scalars; ``loss`` with grad).

    Attributes:
        loss: weighted mean of ``-log sigmoid(inside)`` over pairs.
        accuracy: share of pairs with ``inside > 0`` (the implicit reward prefers the winner).
        margin: mean inside term (the implicit reward margin, winner minus loser).
        err_w / err_l: the policy's mean squared errors on winners and losers (both rising together is the
            known failure: the margin grows while the winner gets worse).
    """

    loss: torch.Tensor
    accuracy: torch.Tensor
    margin: torch.Tensor
    err_w: torch.Tensor
    err_l: torch.Tensor

    def metrics(self) -> dict[str, float]:
        return {k: float(getattr(self, k).detach()) for k in ("loss", "accuracy", "margin", "err_w", "err_l")}


def dpo_loss(err_w: torch.Tensor, err_l: torch.Tensor, ref_err_w: torch.Tensor, ref_err_l: torch.Tensor, *,
             beta: float = 5000.0, weights: torch.Tensor | None = None) -> DPOLoss:
    """Diffusion-DPO on per-pair squared errors (see the module docstring).

    Args:
        err_w / err_l: (P,) the trained model's squared errors (:func:`squared_error`) on the winners and losers.
        ref_err_w / ref_err_l: (P,) the reference model's, on the same noisy inputs.
        beta: the KL strength, > 0.
        weights: (P,) per-pair weights (default 1); the loss is their weighted sum over the number of pairs.

    Raises:
        ValueError: beta <= 0, or shapes that differ.
    """
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if not (err_w.shape == err_l.shape == ref_err_w.shape == ref_err_l.shape) or err_w.ndim != 1:
        raise ValueError(f"the four errors must be (P,) of one shape, got {tuple(err_w.shape)}, {tuple(err_l.shape)}, "
                         f"{tuple(ref_err_w.shape)}, {tuple(ref_err_l.shape)}")
    ref_diff = (ref_err_w - ref_err_l).detach().to(err_w.dtype)
    inside = -0.5 * beta * ((err_w - err_l) - ref_diff)
    w = torch.ones_like(inside) if weights is None else weights.to(inside.device, inside.dtype)
    loss = (-torch.nn.functional.logsigmoid(inside) * w).mean()
    with torch.no_grad():
        return DPOLoss(loss=loss, accuracy=(inside > 0).float().mean(), margin=inside.mean(), err_w=err_w.mean(),
                       err_l=err_l.mean())

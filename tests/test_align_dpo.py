"""Diffusion-DPO maths (prefpaint_sdk.align.algorithms.dpo): exact values."""

from __future__ import annotations

import math

import pytest
import torch

from prefpaint_sdk.align.algorithms.dpo import dpo_loss, squared_error


def test_dpo_loss_exact_values_accuracy_and_margin():
    err_w = torch.tensor([1.0, 2.0], requires_grad=True)
    err_l = torch.tensor([2.0, 1.0])
    ref = torch.tensor([1.5, 1.5])
    # inside = -0.5 * beta * ((err_w - err_l) - (ref_w - ref_l)) = [1, -1] with beta = 2
    out = dpo_loss(err_w, err_l, ref, ref, beta=2.0)
    expected = (math.log1p(math.exp(-1)) + math.log1p(math.exp(1))) / 2
    assert out.loss.item() == pytest.approx(expected)
    assert out.accuracy.item() == 0.5 and out.margin.item() == pytest.approx(0.0)
    out.loss.backward()
    # d/d err_w of -log sigmoid(inside) / P = (1 - sigmoid(inside)) * 0.5 * beta / P
    sig = [1 / (1 + math.exp(-1)), 1 / (1 + math.exp(1))]
    assert err_w.grad.tolist() == pytest.approx([(1 - sig[0]) / 2, (1 - sig[1]) / 2])


def test_dpo_loss_reference_and_weights():
    win, lose = torch.tensor([1.0]), torch.tensor([1.0])
    # the policy ties but the reference preferred the loser by 1: inside = -0.5 * 4 * (0 - 1) = 2
    out = dpo_loss(win, lose, torch.tensor([2.0]), torch.tensor([1.0]), beta=4.0)
    assert out.loss.item() == pytest.approx(math.log1p(math.exp(-2))) and out.accuracy.item() == 1.0
    assert out.margin.item() == pytest.approx(2.0)
    both = dpo_loss(torch.tensor([1.0, 2.0]), torch.tensor([2.0, 1.0]), torch.ones(2), torch.ones(2), beta=2.0,
                    weights=torch.tensor([2.0, 0.0]))
    assert both.loss.item() == pytest.approx(2 * math.log1p(math.exp(-1)) / 2)
    at_start = dpo_loss(win, lose, win, lose, beta=5000.0)  # policy = reference: log 2, no pair preferred yet
    assert at_start.loss.item() == pytest.approx(math.log(2)) and at_start.accuracy.item() == 0.0
    with pytest.raises(ValueError, match="beta must be > 0"):
        dpo_loss(win, lose, win, lose, beta=-1.0)
    with pytest.raises(ValueError, match="one shape"):
        dpo_loss(win, torch.ones(2), win, lose)


def test_squared_error_is_masked_per_sample():
    pred = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]], [[[1.0, 1.0], [1.0, 1.0]]]])
    mask = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]).unsqueeze(0)
    assert squared_error(pred, torch.zeros_like(pred), mask).tolist() == [8.5, 1.0]
    assert squared_error(pred, torch.zeros_like(pred)).tolist() == [7.5, 1.0]

"""The PrefPaint reward model, its trust bound, data readers, training and official-checkpoint import.

* :mod:`.model`: :class:`RewardModel` (CLIP ViT + the paper's head) and :class:`RewardOutput`;
* :mod:`.preprocess`: CLIP preprocessing (exactly transformers' ``CLIPImageProcessor`` on PIL images);
* :mod:`.trust`: ``V = Z^T Z + lam I``, the bound ``||z||_{V^-1}`` and the trust weight;
* :mod:`.convert`: the official ``prefpaintReward.pt`` → our format, and model resolution/caching;
* :mod:`.data`: the official dataset layout and generic manifests; :mod:`.config` + :mod:`.train`: training;
* every reward behind one protocol (:mod:`.base`): :mod:`.prefpaint`, :mod:`.clip` (PickScore, CLIPScore),
  :mod:`.constraints` (brightness, outside-change, seam), :mod:`.remote` (a server over HTTP);
* :mod:`.specs` (``NAME[=SOURCE]`` specs, weights), :mod:`.stack` and :mod:`.normalize` (gdpo, sum, rank);
  :mod:`.choice`: best-of-N by a stack (what ``Inpainter``, ``evaluate`` and ``prefpaint serve`` call).
"""

import importlib

# Every name is loaded on first use, so light submodules (winrate, framing) never pull in torch.
_LAZY = {
    "SCORE_SCALE": "model",
    "SCORE_SHIFT": "model",
    "VIT_B32_CONFIG": "model",
    "RewardModel": "model",
    "RewardOutput": "model",
    "TrustAccumulator": "trust",
    "TrustStats": "trust",
    "fit_trust": "trust",
    "load_official_v_inverse": "trust",
    "trust_bound": "trust",
    "trust_weight": "trust",
    "convert_official_checkpoint": "convert",
    "resolve_reward_model": "convert",
    "read_reward_data": "data",
    "read_preference_pairs": "data",
    "split_by_group": "data",
    "RewardData": "data",
    "RewardTrainConfig": "config",
    "load_reward_config": "config",
    "REWARD_PRESETS": "config",
    "train_reward": "train",
    "TrainResult": "train",
    "RewardScores": "base",
    "RewardEnsemble": "stack",
    "RewardStack": "stack",
    "RewardSpec": "specs",
    "parse_spec": "specs",
    "load_stack": "specs",
    "brightness_in_mask": "constraints",
    "validate_score": "scoring",
    "score_folder_outputs": "folder",
}

__all__ = [
    "REWARD_PRESETS",
    "RewardEnsemble",
    "RewardScores",
    "RewardSpec",
    "RewardStack",
    "brightness_in_mask",
    "load_stack",
    "parse_spec",
    "SCORE_SCALE",
    "SCORE_SHIFT",
    "VIT_B32_CONFIG",
    "RewardData",
    "RewardModel",
    "RewardOutput",
    "RewardTrainConfig",
    "TrainResult",
    "TrustAccumulator",
    "TrustStats",
    "convert_official_checkpoint",
    "fit_trust",
    "load_official_v_inverse",
    "load_reward_config",
    "read_preference_pairs",
    "read_reward_data",
    "resolve_reward_model",
    "split_by_group",
    "train_reward",
    "trust_bound",
    "trust_weight",
    "validate_score",
    "score_folder_outputs",
]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'prefpaint_sdk.reward' has no attribute '{name}'")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value

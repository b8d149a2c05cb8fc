"""Rewards named by text (CLI flags, configs): ``NAME`` or ``NAME=SOURCE``, weights, and stacks of them.

Names (:data:`REWARD_NAMES`):

* ``prefpaint[=SOURCE]``: the PrefPaint reward model (a folder, hub id or official ``.pt``; default
  ``kd5678/prefpaintReward``). A bare folder or hub id also means ``prefpaint=`` it (``--reward-model``);
* ``clip=SOURCE``: a ``transformers`` CLIPModel folder or hub id (PickScore, CLIP);
* ``remote=http://HOST:PORT``: a server speaking the score protocol (:mod:`.remote`);
* ``brightness``, ``outside-change``, ``seam``: built in (:mod:`.constraints`), no source;
* ``hpsv2=SOURCE``: HPSv2 from a local folder or checkpoint file (:mod:`.hpsv2`, open_clip's weights on
  transformers' CLIPModel);
* ``imagereward=SOURCE``: ImageReward from a local folder or checkpoint file (:mod:`.imagereward`, its BLIP
  weights on transformers' BLIP towers);

Resolution runs in phases so that a bad name fails before any model loads: :func:`parse_spec` reads the
text; :func:`resolve_reward` checks every name, finds each model's local folder and checks that each
remote server accepts a connection (no weights are read); :func:`load_reward` then loads the models, and
:func:`load_stack` builds a :class:`~prefpaint_sdk.reward.stack.RewardStack`.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..errors import Arg, ConfigError
from .constraints import BUILTIN_REWARDS
from .stack import RewardEnsemble

__all__ = ["REWARD_NAMES", "RewardSpec", "load_reward", "load_stack", "parse_spec", "parse_weights", "resolve_reward",
           "reward_from_flags", "stack_specs"]

# name -> whether it takes a source: "optional", "required" or "none"
REWARD_NAMES = {"prefpaint": "optional", "clip": "required", "hpsv2": "required", "imagereward": "required",
                "remote": "required",
                **{name: "none" for name in BUILTIN_REWARDS}}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")

UNAVAILABLE: dict[str, str] = {}  # names refused in one line, with the reason (none at present)


@dataclass(frozen=True)
class RewardSpec:
    """A parsed spec: ``name`` (one of :data:`REWARD_NAMES`) and its ``source`` (``None`` for the default)."""

    name: str
    source: str | None = None


def _names() -> str:
    return ", ".join([*REWARD_NAMES, *UNAVAILABLE])


def parse_spec(text: str | os.PathLike | RewardSpec, param: str = "reward") -> RewardSpec:
    """``"clip=FOLDER"`` -> ``RewardSpec("clip", "FOLDER")``; a bare folder or hub id is a PrefPaint model.

    Raises:
        ConfigError: an unknown name, a missing or unexpected source, a remote URL that is not http(s)://HOST:PORT.
    """
    if isinstance(text, RewardSpec):
        return text
    text = os.fspath(text).strip()
    if not text:
        raise ConfigError(Arg(param), f" is empty; write NAME or NAME=SOURCE with NAME one of {_names()}")
    name, eq, source = text.partition("=")
    if name in UNAVAILABLE:
        from ..errors import MissingDependencyError

        raise MissingDependencyError(Arg(param), f" '{text}': {UNAVAILABLE[name]}")
    if not eq:
        if text in REWARD_NAMES:
            if REWARD_NAMES[text] == "required":
                hint = {"remote": "http://HOST:PORT", "hpsv2": "FOLDER", "imagereward": "FOLDER"}.get(text, "FOLDER_OR_HUB_ID")
                raise ConfigError(Arg(param), f" '{text}' needs a source; write {text}={hint}")
            return RewardSpec(text)
        if Path(text).expanduser().exists() or "/" in text:
            return RewardSpec("prefpaint", text)
        raise ConfigError(Arg(param), f" '{text}' is neither a built-in reward name ({_names()}), an existing folder, nor a "
                          "hub id of the form owner/name; write NAME or NAME=SOURCE")
    if name not in REWARD_NAMES:
        if _NAME.match(name):
            raise ConfigError(Arg(param), f" '{text}' names an unknown reward '{name}'; use one of {_names()}")
        return RewardSpec("prefpaint", text)  # a path that holds '=': a PrefPaint model folder
    if REWARD_NAMES[name] == "none":
        raise ConfigError(Arg(param), f" '{text}': the built-in reward '{name}' takes no source; write {name}")
    if not source.strip():
        raise ConfigError(Arg(param), f" '{text}' has an empty source; write {name}=SOURCE")
    if name == "remote":
        from .remote import check_remote_url

        check_remote_url(source.strip())
    return RewardSpec(name, source.strip())


def parse_weights(text: str | None, n: int, param: str = "reward_weights") -> tuple[float, ...] | None:
    """``"0.7,0.3"`` -> ``(0.7, 0.3)``, checked against the ``n`` rewards it weights (``None`` stays ``None``).

    Raises:
        ConfigError: not numbers, a count other than ``n``, a non-finite weight or all weights zero.
    """
    if text is None:
        return None
    parts = [p.strip() for p in str(text).split(",")]
    try:
        weights = tuple(float(p) for p in parts)
    except ValueError:
        raise ConfigError(Arg(param), f" '{text}' is not a comma-separated list of numbers; write e.g. ",
                          Arg(param, "0.7,0.3")) from None
    if len(weights) != n:
        raise ConfigError(Arg(param), f" '{text}' gives {len(weights)} weights for {n} rewards; give one weight per reward")
    if not all(math.isfinite(w) for w in weights):
        raise ConfigError(Arg(param), f" '{text}' holds a non-finite weight; give finite numbers such as 0.7,0.3")
    if not any(weights):
        raise ConfigError(Arg(param), f" '{text}' weights are all zero; give at least one non-zero weight")
    return weights


def _resolve_one(spec: Any, *, offline: bool | None, param: str) -> Any:
    """A built-in stays its name; a PrefPaint model becomes its local folder (a Path); clip and remote stay
    specs, with clip's source made a checked local folder and the remote host found listening."""
    if isinstance(spec, RewardSpec):
        parsed = spec
    elif isinstance(spec, (str, os.PathLike)):
        parsed = parse_spec(spec, param)
    else:
        return spec  # a Python reward object or callable: used as is
    if parsed.name in BUILTIN_REWARDS:
        return parsed.name
    if parsed.name == "prefpaint":
        from .checks import check_reward_model

        return check_reward_model(parsed.source, offline=offline).path  # headers and pickles too: before the pipeline loads
    if parsed.name == "clip":
        from ..hub import resolve_model
        from .clip import check_clip_folder

        return RewardSpec("clip", str(check_clip_folder(resolve_model(parsed.source, offline=offline, what="clip model").path)))
    if parsed.name == "hpsv2":
        from .hpsv2 import check_hps_source

        check_hps_source(parsed.source)  # the checkpoint's pickle is scanned here: before any model loads
        return parsed
    if parsed.name == "imagereward":
        from .imagereward import check_imagereward_source

        check_imagereward_source(parsed.source)
        return parsed
    from .remote import probe_remote

    probe_remote(parsed.source)
    return parsed


def resolve_reward(reward: Any, *, offline: bool | None = None, param: str = "reward_model") -> Any:
    """Check every reward spec in ``reward`` and find each model's folder, reading no weights.

    ``reward`` is a spec (text, :class:`RewardSpec`), a :class:`~prefpaint_sdk.reward.stack.RewardEnsemble` or a
    list of them, or a Python reward (returned as is). The result has the same structure, for :func:`load_reward`.

    Raises:
        ConfigError: an unknown name or a malformed spec. InvalidInputError / PickleRefusedError: a model
        folder that cannot be used. ModelNotFoundError: a hub id that is not cached (offline) or cannot be
        downloaded, or a remote server that is unreachable.
    """
    if isinstance(reward, (list, tuple)):
        reward = RewardEnsemble(tuple(reward))
    if isinstance(reward, RewardEnsemble):
        return RewardEnsemble(tuple(_resolve_one(m, offline=offline, param=param) for m in reward.members), reward.weights)
    return _resolve_one(reward, offline=offline, param=param)


def load_reward(reward: Any, *, device: str = "auto", offline: bool | None = None, param: str = "reward_model") -> Any:
    """``reward`` with every model loaded (specs are resolved first, as :func:`resolve_reward` does).

    PrefPaint models become :class:`~prefpaint_sdk.reward.RewardModel`, ``clip`` a
    :class:`~prefpaint_sdk.reward.clip.ClipReward`, ``hpsv2`` a :class:`~prefpaint_sdk.reward.hpsv2.HpsReward`, ``remote`` a :class:`~prefpaint_sdk.reward.remote.RemoteReward`;
    built-in names stay names.

    Raises:
        as :func:`resolve_reward`, and whatever loading a model raises (ModelNotFoundError, PickleRefusedError).
    """
    reward = resolve_reward(reward, offline=offline, param=param)

    def load(r):
        if isinstance(r, Path):
            from .model import RewardModel

            return RewardModel.from_pretrained(r, device=device, offline=offline)
        if isinstance(r, RewardSpec) and r.name == "clip":
            from .clip import ClipReward

            return ClipReward.from_pretrained(r.source, device=device)
        if isinstance(r, RewardSpec) and r.name == "hpsv2":
            from .hpsv2 import HpsReward

            return HpsReward.from_pretrained(r.source, device=device)
        if isinstance(r, RewardSpec) and r.name == "imagereward":
            from .imagereward import ImageRewardModel

            return ImageRewardModel.from_pretrained(r.source, device=device)
        if isinstance(r, RewardSpec) and r.name == "remote":
            from .remote import RemoteReward

            return RemoteReward(r.source)
        return r

    if isinstance(reward, RewardEnsemble):
        return RewardEnsemble(tuple(load(m) for m in reward.members), reward.weights)
    return load(reward)


def reward_from_flags(specs: Sequence[str], weights: str | None, param: str, weights_param: str) -> Any:
    """The reward a CLI's repeatable flag and its weights flag name: one spec as itself, else an ensemble.

    Raises:
        ConfigError: bad weights (see :func:`parse_weights`).
    """
    w = parse_weights(weights, len(specs), weights_param)
    if len(specs) == 1 and w is None:
        return specs[0]
    return RewardEnsemble(tuple(specs), w or ())


def stack_specs(specs: Sequence[str | RewardSpec], weights: str | None = None, norm: str = "gdpo", *, param: str = "reward",
                weights_param: str = "reward_weights") -> tuple[list[RewardSpec], tuple[float, ...]]:
    """Parse a stack's flags (no file or network touched): its specs and one weight per spec (default 1 each).

    Raises:
        ConfigError: no spec, an unknown name, bad weights, an unknown ``norm``.
    """
    from .normalize import NORMS

    if not specs:
        raise ConfigError("give at least one ", Arg(param, "NAME[=SOURCE]"), f"; known rewards: {_names()}")
    if norm not in NORMS:
        raise ConfigError(Arg(f"{param}_norm"), f" must be one of {', '.join(NORMS)}, got '{norm}'")
    parsed = [parse_spec(s, param) for s in specs]
    return parsed, parse_weights(weights, len(parsed), weights_param) or (1.0,) * len(parsed)


def load_stack(specs: Sequence[str | RewardSpec], weights: Sequence[float] | str | None = None, norm: str = "gdpo", *,
               device: str = "auto", offline: bool | None = None, param: str = "reward", batch_size: int = 16):
    """A :class:`~prefpaint_sdk.reward.stack.RewardStack` of ``specs``: every spec checked and every
    remote probed first, then the models loaded.

    Raises:
        as :func:`stack_specs` and :func:`load_reward`.
    """
    from .stack import RewardStack

    if weights is None or isinstance(weights, str):
        parsed, w = stack_specs(specs, weights, norm, param=param)
    else:
        parsed, w = stack_specs(specs, None, norm, param=param)[0], tuple(float(x) for x in weights)  # the stack checks them
    resolved = [resolve_reward(p, offline=offline, param=param) for p in parsed]  # every check before any load
    members = [load_reward(r, device=device, offline=offline, param=param) for r in resolved]
    return RewardStack(members, labels=[p.name for p in parsed], weights=w, norm=norm, batch_size=batch_size)

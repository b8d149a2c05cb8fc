"""One entry point's first half: resolve an alignment run and check everything that needs no model.

:func:`plan_run` is what :meth:`Aligner.from_pretrained <prefpaint_sdk.align.Aligner.from_pretrained>` does
before it loads anything, and ``prefpaint train align`` is that call with flags; so Python and the command
line resolve the same config from the same inputs, and validate it once. In order:

1. the inputs: the data and eval-data paths, a TOML file, the output folder (writable);
2. the model's family from its ``model_index.json`` alone, so the family's preset values and its default
   algorithm apply before anything loads;
3. the config: defaults < preset < the preset's family values < TOML < overrides, the algorithm named
   (resuming without one takes the run record's; another one than the record's is refused), validated
   once with the family's sampler; the guards' needs (``on_hacking='stop'`` and a gold reward);
4. the run folder (an earlier run only with resume or overwrite; on resume, its checkpoint and guard files);
5. the data, opened by the algorithm (headers only); the rewards' names and folders (no weights read), a
   stack's weights and norm (on resume, against the run record's), each remote judge probed;
6. the model's folder (local, cached or downloaded; where the family could not be told in 2, the
   algorithm is named and the config validated now), the DDIM steps against its scheduler, its files.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Arg, ConfigError, Hint, InvalidInputError
from .config import AlignConfig, family_values, load_config

__all__ = ["RunPlan", "check_run_args", "parse_settings", "plan_run", "resolve_config"]


@dataclass
class RunPlan:
    """A resolved alignment run, before any model loads.

    Attributes:
        model_path / model_id: the pipeline folder and the id recorded in logs and exports.
        engine_cls: the family's engine class. config: the resolved, validated config.
        reward / gold_reward: the reward specs with names resolved (no weights read), for ``load_reward``.
        data / eval_data: the opened training and held-out data. family_values: the settings the preset sets
            for this family, with the values in effect (empty when it has none), to show the user.
    """

    model_path: Path
    model_id: str
    engine_cls: Any
    config: AlignConfig
    reward: Any
    gold_reward: Any = None
    reward_weights: tuple[float, ...] | None = None
    reward_norm: str | None = None
    reward_specs: list[str] | None = None
    data: Any = None
    eval_data: Any = None
    family_values: dict[str, Any] = field(default_factory=dict)


def resolve_config(*, family: str | None, default_algo: str | None, config: AlignConfig | str | os.PathLike | None = None,
                   preset: str | None = None, algo: str | None = None, overrides: dict[str, Any] | None = None,
                   resume_from: str | os.PathLike | None = None) -> AlignConfig:
    """The run's config with its algorithm named, not yet validated.

    Args:
        family / default_algo: the model's family and its engine's default algorithm (``None`` when the
            family cannot be told yet: the config then names an algorithm only if it was asked for).
        config: an :class:`AlignConfig` to start from (then ``preset`` must be ``None``), or a TOML file.
        preset / algo / overrides: as :meth:`Aligner.from_pretrained`.
        resume_from: a run folder being resumed: without an ``algo`` the record's is taken; another is refused.

    Raises:
        ConfigError: an unknown preset, setting or algorithm; a preset with a config object; another
            algorithm than the resumed run's.
    """
    overrides = {**(overrides or {}), **({"algo": algo} if algo else {})}
    if isinstance(config, AlignConfig):
        if preset:
            raise ConfigError("give a preset or a config object, not both; put the preset's values in the config "
                              "with load_config(preset=...)")
        cfg = config.replace(**{k: v for k, v in overrides.items() if v is not None})
    else:
        cfg = load_config(preset, config, overrides, family=family)
    return name_algorithm(cfg, default_algo, resume_from)


def name_algorithm(cfg: AlignConfig, default_algo: str | None, resume_from=None) -> AlignConfig:
    """``cfg`` resolved (:meth:`AlignConfig.resolve`) for the family's ``default_algo``; a resumed run keeps the
    algorithm of its record unless another was asked for, which is refused. Unchanged while neither the
    config nor the family names an algorithm (``default_algo`` ``None``)."""
    if resume_from is not None and (cfg.algo or default_algo):
        from .checkpoint import check_resume_algo, recorded_algo

        if not cfg.algo:  # a resumed run keeps its algorithm, even if the family's default changed since
            cfg = cfg.replace(algo=recorded_algo(resume_from, default_algo) or default_algo)
        # a record of the family's default ("algo": "") cannot be told apart before the family is known
        check_resume_algo(resume_from, cfg.algo, default_algo or cfg.algo)
    if default_algo is None:
        return cfg.resolve() if cfg.algo else cfg
    return cfg.resolve(default_algo)


def _likely_algo(cfg: AlignConfig) -> str:
    """An algorithm that has every setting in ``cfg.algo_settings`` ("ppo" first), to check a config by before
    the model's family, and so its default algorithm, is known."""
    from .algorithms import algorithm_names, setting_owners

    owners = setting_owners()
    fits = [a for a in algorithm_names() if all(a in owners.get(k, ()) for k in cfg.algo_settings)]
    return "ppo" if "ppo" in fits or not fits else fits[0]


def parse_settings(settings) -> dict[str, Any]:
    """Settings by name: a dict as it is, or ``NAME=VALUE`` texts (``["clip_range=1e-3"]``; ``-`` in a name is
    ``_``) as a dict of texts, later ones winning.

    Raises:
        ConfigError: an item that is not ``NAME=VALUE``.
    """
    if settings is None or isinstance(settings, dict):
        return dict(settings or {})
    out: dict[str, Any] = {}
    for item in settings:
        if not isinstance(item, str) or "=" not in item:
            raise ConfigError(Arg("settings"), f" item '{item}' is not NAME=VALUE; write e.g. clip_range=1e-3")
        k, v = item.split("=", 1)
        out[k.strip().replace("-", "_")] = v.strip()
    return out


def check_run_args(*, reward, data, output_dir, device: str = "auto", preset: str | None = None,
                   algo: str | None = None, gold_reward=None, reward_weights=None, reward_norm: str | None = None,
                   settings=None) -> None:
    """The checks of a run that need no model and no file (:meth:`Aligner.validate
    <prefpaint_sdk.align.Aligner.validate>`): the device, the arguments a run needs, the names (preset,
    algorithm, every reward spec, the settings' form) and a stack's weights and norm against its rewards."""
    from ..devices import resolve_device
    from ..reward.specs import RewardSpec, parse_spec
    from ..reward.stack import RewardEnsemble
    from .algorithms import get_algorithm
    from .config import _preset_own
    from .reward_stack import check_stack_args

    resolve_device(device)  # the device first: `cuda` without CUDA is refused before anything is read
    if reward is None or (isinstance(reward, (list, tuple)) and not reward):
        raise ConfigError("give a reward: ", Arg("reward", "NAME[=SOURCE]"), " (e.g. brightness; several make a stack)",
                          Hint(" or ", Arg("reward_model", "ID")))
    if data is None or output_dir is None:
        raise ConfigError("Aligner.from_pretrained needs reward=, data= and output_dir=")
    if preset and _preset_own(preset) is None:
        from .config import load_config

        load_config(preset)  # its message lists the known presets
    if algo:
        get_algorithm(algo)
    parse_settings(settings)
    for value, param in ((reward, "reward"), (gold_reward, "gold_reward")):
        members = value.members if isinstance(value, RewardEnsemble) else value
        for spec in members if isinstance(members, (list, tuple)) else (members,):
            if isinstance(spec, (str, os.PathLike, RewardSpec)):
                parse_spec(spec, param)  # an unknown name in one line, before anything is read
    check_stack_args(reward, reward_weights, reward_norm)


def plan_run(model, *, reward, data, output_dir, config=None, preset: str | None = None, algo: str | None = None,
             eval_data=None, gold_reward=None, resume: bool = False, overwrite: bool = False,
             offline: bool | None = None, revision: str | None = None, overrides: dict[str, Any] | None = None,
             reward_weights=None, reward_norm: str | None = None) -> RunPlan:
    """Resolve a run and check everything that needs no model (see the module docstring).

    Raises:
        InvalidInputError: a missing data path or TOML file, an unusable output folder. OutputExistsError: a
        used run folder without resume or overwrite. ConfigError, DataError, CorruptFileError: bad settings,
        data, or resume state. ModelNotFoundError: the model is neither local, cached nor downloadable.
        NotAlignableError: the family has no training path.
    """
    plan_data, plan_eval = data, eval_data
    for path, what in ((data, "data"), (eval_data, "eval data")):
        if isinstance(path, (str, os.PathLike)) and not Path(path).exists():
            raise InvalidInputError(f"{what} '{path}' does not exist; pass a folder with images/ or a manifest.jsonl")
    if isinstance(config, (str, os.PathLike)) and not Path(config).is_file():
        raise InvalidInputError(f"config '{config}' does not exist or is not a file; check the path")
    from ..engines import engine_class, family_of_folder, family_of_model
    from ..files import check_output_dir
    from ..reward.specs import resolve_reward
    from .algorithms import get_algorithm
    from .algorithms.base import Algorithm
    from .checkpoint import check_run_folder
    from .guards import check_guard_state, check_guards

    # a file where the run folder must go, or a folder that cannot be created or written
    check_output_dir(output_dir, overwrite=True)
    # The family from the model's model_index.json alone (None when it cannot be told without loading it).
    family = family_of_model(model, offline=offline, revision=revision)
    engine_cls = engine_class(family) if family else None
    if engine_cls is not None and not engine_cls.alignable:
        raise engine_cls.not_alignable()
    resume_from = output_dir if resume else None
    cfg = resolve_config(family=family, default_algo=engine_cls.default_algo if engine_cls else None, config=config,
                         preset=preset, algo=algo, overrides=overrides, resume_from=resume_from)
    if cfg.algo:
        cfg.validate(sampler=engine_cls.sampler_kind if engine_cls else None)  # once: the Aligner takes it as checked
        if engine_cls is not None:  # e.g. logprob_region='full' on a latent-blend family
            engine_cls.check_logprob_region(cfg.algo_settings.get("logprob_region", "auto"))
    else:  # no family yet (the model is not found here): check as the algorithm that has the settings given
        cfg.resolve(_likely_algo(cfg)).validate()
    check_guards(cfg, gold_reward)
    check_run_folder(output_dir, resume=resume, overwrite=overwrite)  # a used folder, a damaged checkpoint
    if resume:
        check_guard_state(output_dir)
    opener = get_algorithm(cfg.algo) if cfg.algo else Algorithm
    data = opener.open_data(data, cfg, cfg.seed, cfg.resolution or None)
    if eval_data is not None:
        eval_data = opener.open_data(eval_data, cfg, cfg.seed + 1, cfg.resolution or None)
    from .reward_stack import check_stack_args, resume_stack, spec_texts

    # a stack: its weights and norm against its rewards, and on resume against the run record's
    reward, reward_weights, reward_norm = check_stack_args(reward, reward_weights, reward_norm)
    if resume:
        reward, reward_weights, reward_norm = resume_stack(output_dir, reward, reward_weights, reward_norm)
    specs = spec_texts(reward if isinstance(reward, (list, tuple)) else [reward])
    if isinstance(reward, (list, tuple)):
        reward = [resolve_reward(r, offline=offline, param="reward") for r in reward]
    else:
        reward = resolve_reward(reward, offline=offline)
    if gold_reward is not None:
        gold_reward = resolve_reward(gold_reward, offline=offline, param="gold_reward")

    from ..hub import resolve_model
    from ..state import check_pipeline_folder

    resolved = resolve_model(model, offline=offline, revision=revision)
    if engine_cls is None:  # told only now, from the downloaded folder: the family's values and checks apply now
        family = family_of_folder(resolved.path, resolved.model_id)
        engine_cls = engine_class(family)
        if not engine_cls.alignable:
            raise engine_cls.not_alignable()
        cfg = name_algorithm(cfg, engine_cls.default_algo, resume_from)
        cfg.validate(sampler=engine_cls.sampler_kind)
        engine_cls.check_logprob_region(cfg.algo_settings.get("logprob_region", "auto"))
    scheduler_config = resolved.path / "scheduler" / "scheduler_config.json"
    if engine_cls.sampler_kind == "ddim" and scheduler_config.is_file():  # DDIM steps must fit the scheduler
        engine_cls.check_scheduler_steps(cfg.num_steps, json.loads(scheduler_config.read_text()))
    check_pipeline_folder(resolved.path)
    algo_cls = get_algorithm(cfg.algo)
    if algo_cls.open_data is not opener.open_data:  # opened before the algorithm was known: its own reader
        data = algo_cls.open_data(plan_data, cfg, cfg.seed, cfg.resolution or None)
        if eval_data is not None:
            eval_data = algo_cls.open_data(plan_eval, cfg, cfg.seed + 1, cfg.resolution or None)
    # the values in effect of what the preset sets for this family (a TOML file or an override may have won)
    names = [*family_values(cfg.preset, cfg.preset_family),
             *family_values(cfg.preset, cfg.preset_family, algo_cls.name)]
    shown = {k: cfg.algo_settings[k] if k in cfg.algo_settings else getattr(cfg, k) for k in names}
    return RunPlan(model_path=resolved.path, model_id=resolved.model_id, engine_cls=engine_cls, config=cfg,
                   reward=reward, gold_reward=gold_reward, data=data, eval_data=eval_data, family_values=shown,
                   reward_weights=reward_weights, reward_norm=reward_norm, reward_specs=specs)

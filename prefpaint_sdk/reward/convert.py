"""Import the official PrefPaint reward checkpoint, and find a reward model by id, folder or file.

The official ``prefpaintReward.pt`` (hub repo ``kd5678/prefpaintReward``) is a plain torch state dict:

* ``clip_model.*``: a whole OpenAI-CLIP ViT-B/32 in the original OpenAI layout (only ``clip_model.visual.*``
  is used; the text tower and ``logit_scale`` are dropped);
* ``vit_block.transformer_encoder.layers.0.*``: the fusion layer actually used (the duplicate
  ``vit_block.encoder_layer.*`` is dropped);
* ``mlp.layers.0.*`` (1024→512), ``mlp.layers.2.*`` (512→256), ``mlp.last_layer.weight`` (256→1);
* keys may carry a ``module.`` prefix (DataParallel).

It is always read with ``torch.load(..., weights_only=True)`` and converted to a :class:`RewardModel`
folder (safetensors + config). The default reward model is downloaded once, converted once and cached in
``$PREFPAINT_CACHE/converted`` (default ``~/.cache/prefpaint/converted``), keyed by the hub commit.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from pathlib import Path

from ..errors import Arg, InvalidInputError, ModelNotFoundError
from ..files import load_torch_file
from ..hub import DEFAULT_REWARD_MODEL, ResolvedModel, check_model_name, is_offline, resolve_model
from ..state import check_finite
from ..validation import validated_by

__all__ = [
    "OFFICIAL_REWARD_FILES",
    "convert_official_checkpoint",
    "convert_official_state_dict",
    "converted_cache_dir",
    "load_official_state_dict",
    "resolve_reward_model",
]

log = logging.getLogger(__name__)

# hub repos that hold an official-format .pt instead of a converted folder: repo id -> file name
OFFICIAL_REWARD_FILES = {DEFAULT_REWARD_MODEL: "prefpaintReward.pt"}
V_INVERSE_FILE = "V_inverse.pt"

_VISUAL = "clip_model.visual."
_FUSION = "vit_block.transformer_encoder.layers.0."
_HEAD_MAP = {"mlp.layers.0.": "mlp.0.", "mlp.layers.2.": "mlp.2.", "mlp.last_layer.": "last_layer."}


def converted_cache_dir() -> Path:
    """Where converted official checkpoints are cached (``PREFPAINT_CACHE``, else ``~/.cache/prefpaint``)."""
    root = os.environ.get("PREFPAINT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "prefpaint")
    return Path(root) / "converted"


def load_official_state_dict(path: str | os.PathLike) -> dict:
    """Read an official ``.pt`` with ``weights_only=True`` and strip a ``module.`` prefix."""
    p = Path(path)
    sd = load_torch_file(p, "reward checkpoint", "pass the official prefpaintReward.pt")
    for wrapper in ("state_dict", "model"):
        if isinstance(sd, dict) and isinstance(sd.get(wrapper), dict):
            sd = sd[wrapper]
    if not isinstance(sd, dict):
        raise InvalidInputError(f"'{p}' holds a {type(sd).__name__}, not a state dict")
    sd = {(k.removeprefix("module.")): v for k, v in sd.items()}
    # NaN/inf weights would convert into a folder that scores NaN: refuse them here, naming the tensor.
    check_finite(sd, p, "reward checkpoint", "use an intact copy of the official prefpaintReward.pt")
    return sd


def _take(sd: dict, key: str):
    if key not in sd:
        raise InvalidInputError(f"official reward checkpoint lacks '{key}'; is it prefpaintReward.pt in the OpenAI-CLIP layout?")
    return sd[key]


def convert_official_state_dict(sd: dict, *, vision_heads: int | None = None, head_heads: int = 16):
    """Official layout → (``RewardModel`` config kwargs, ``RewardModel`` state dict).

    Args:
        sd: the official state dict (``module.`` already stripped or not).
        vision_heads: attention heads of the CLIP tower (default: width // 64, OpenAI's rule).
        head_heads: heads of the fusion layer (16 in the release; with its length-1 sequence any divisor of
            the width gives the same numbers).
    """
    sd = {(k.removeprefix("module.")): v for k, v in sd.items()}
    vis = {k[len(_VISUAL):]: v for k, v in sd.items() if k.startswith(_VISUAL)}
    conv = _take(sd, _VISUAL + "conv1.weight")
    width, patch = int(conv.shape[0]), int(conv.shape[-1])
    n_layers = len({k.split(".")[2] for k in vis if k.startswith("transformer.resblocks.")})
    pos = _take(vis, "positional_embedding")
    grid = round(math.sqrt(pos.shape[0] - 1))
    if grid * grid + 1 != pos.shape[0]:
        raise InvalidInputError(f"positional_embedding has {pos.shape[0]} rows, not a square grid + 1 class token")
    proj = _take(vis, "proj")
    heads = vision_heads or max(1, width // 64)
    vision_config = {
        "hidden_size": width, "intermediate_size": int(_take(vis, "transformer.resblocks.0.mlp.c_fc.weight").shape[0]),
        "num_hidden_layers": n_layers, "num_attention_heads": heads, "image_size": grid * patch, "patch_size": patch,
        "projection_dim": int(proj.shape[1]), "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
    }
    out = {
        "backbone.vision_model.embeddings.class_embedding": _take(vis, "class_embedding"),
        "backbone.vision_model.embeddings.patch_embedding.weight": conv,
        "backbone.vision_model.embeddings.position_embedding.weight": pos,
        "backbone.visual_projection.weight": proj.t().contiguous(),
    }
    for ours, theirs in (("pre_layrnorm", "ln_pre"), ("post_layernorm", "ln_post")):
        for p in ("weight", "bias"):
            out[f"backbone.vision_model.{ours}.{p}"] = _take(vis, f"{theirs}.{p}")
    for i in range(n_layers):
        src, dst = f"transformer.resblocks.{i}.", f"backbone.vision_model.encoder.layers.{i}."
        for p in ("weight", "bias"):
            q, k, v = _take(vis, f"{src}attn.in_proj_{p}").chunk(3, dim=0)
            out[f"{dst}self_attn.q_proj.{p}"] = q.contiguous()
            out[f"{dst}self_attn.k_proj.{p}"] = k.contiguous()
            out[f"{dst}self_attn.v_proj.{p}"] = v.contiguous()
            out[f"{dst}self_attn.out_proj.{p}"] = _take(vis, f"{src}attn.out_proj.{p}")
            out[f"{dst}layer_norm1.{p}"] = _take(vis, f"{src}ln_1.{p}")
            out[f"{dst}layer_norm2.{p}"] = _take(vis, f"{src}ln_2.{p}")
            out[f"{dst}mlp.fc1.{p}"] = _take(vis, f"{src}mlp.c_fc.{p}")
            out[f"{dst}mlp.fc2.{p}"] = _take(vis, f"{src}mlp.c_proj.{p}")
    fusion = {k[len(_FUSION):]: v for k, v in sd.items() if k.startswith(_FUSION)}
    if not fusion:
        raise InvalidInputError(f"official reward checkpoint has no '{_FUSION}*' keys (the fusion layer)")
    out.update({f"fusion.{k}": v for k, v in fusion.items()})
    for theirs, ours in _HEAD_MAP.items():
        found = {k[len(theirs):]: v for k, v in sd.items() if k.startswith(theirs)}
        if not found:
            raise InvalidInputError(f"official reward checkpoint has no '{theirs}*' keys")
        out.update({ours + k: v for k, v in found.items()})
    d_model = int(fusion["linear1.weight"].shape[1])
    config = {
        "vision_config": vision_config,
        "head_heads": head_heads if d_model % head_heads == 0 else 1,
        "head_ff": int(fusion["linear1.weight"].shape[0]),
        "mlp_hidden": int(out["mlp.0.weight"].shape[0]),
        "embed_dim": int(out["mlp.2.weight"].shape[0]),
    }
    dropped = sorted({".".join(k.split(".")[:2]) for k in sd
                      if not (k.startswith((_VISUAL, _FUSION, "mlp.")))})
    if dropped:
        log.debug("dropped official key groups not used by the reward: %s", ", ".join(dropped))
    return config, {k: v.float() for k, v in out.items()}


def validate_conversion(pt_path: str | os.PathLike, out_dir: str | os.PathLike, *,
                        v_inverse: str | os.PathLike | None = None, overwrite: bool = False) -> None:
    """Every check of :func:`convert_official_checkpoint` that reads no weights: both input files exist, and
    ``out_dir`` is usable (not a file; empty, or ``overwrite``).

    Raises:
        InvalidInputError: a missing input file, an unusable output folder. OutputExistsError: ``out_dir`` holds files.
    """
    from ..files import check_output_dir

    for path, what in ((pt_path, "checkpoint"), (v_inverse, "V_inverse file")):
        if path is not None and not Path(path).is_file():
            raise InvalidInputError(f"{what} '{path}' does not exist or is not a file; check the path")
    check_output_dir(out_dir, overwrite)


@validated_by(validate_conversion)
def convert_official_checkpoint(pt_path: str | os.PathLike, out_dir: str | os.PathLike, *,
                                v_inverse: str | os.PathLike | None = None, overwrite: bool = False,
                                vision_heads: int | None = None):
    """Convert ``prefpaintReward.pt`` (and optionally ``V_inverse.pt``) into a :class:`RewardModel` folder.

    The folder is written under a temporary name and renamed into place, so it is complete or absent.

    Returns:
        the loaded :class:`RewardModel` (CPU, eval mode).

    Raises:
        InvalidInputError: unreadable file or missing keys. OutputExistsError: ``out_dir`` exists.
    """

    validate_conversion(pt_path, out_dir, v_inverse=v_inverse, overwrite=overwrite)
    out = Path(out_dir)
    model = _write_converted(load_official_state_dict(pt_path), out, v_inverse=v_inverse, vision_heads=vision_heads,
                             source=pt_path)
    log.info("converted '%s' to '%s'", pt_path, out)
    return model


def _write_converted(sd: dict, out: Path, *, v_inverse=None, vision_heads: int | None = None, source=None):
    """Convert an official state dict and save the :class:`RewardModel` folder ``out`` atomically (replacing it)."""
    from .model import RewardModel, save_atomic
    from .trust import load_official_v_inverse

    try:
        config, state = convert_official_state_dict(sd, vision_heads=vision_heads)
        model = RewardModel(**config)
        missing, unexpected = model.load_state_dict(state, strict=False)
    except InvalidInputError:
        raise
    except (AttributeError, IndexError, KeyError, RuntimeError, TypeError, ValueError) as exc:  # shapes or types
        lines = [ln.strip() for ln in str(exc).strip().splitlines()] or [exc.__class__.__name__]
        detail = next((ln for ln in lines if "mismatch" in ln), lines[0])  # torch lists the mismatches below a title
        raise InvalidInputError(f"reward checkpoint '{source or 'state dict'}' does not have the official layout's "
                                f"shapes ({detail[:200]}); pass the official prefpaintReward.pt") from None
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise InvalidInputError(f"converted checkpoint does not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    if v_inverse is not None:
        model.set_trust(load_official_v_inverse(v_inverse))
    model.eval()
    save_atomic(model, out, overwrite=True)
    return model


# ------------------------------------------------------------------------------------------------
# Finding a reward model


def resolve_reward_model(model: str | os.PathLike | None = None, *, offline: bool | None = None,
                         revision: str | None = None) -> ResolvedModel:
    """A local folder holding a :class:`RewardModel` for a folder, hub id or official ``.pt`` file.

    * a folder: used as is;
    * a ``.pt``/``.pth`` file in the official layout: converted once into the cache (keyed by its hash);
    * an official hub repo (``kd5678/prefpaintReward``): its ``.pt`` is downloaded, converted once, cached;
    * any other hub id: a folder saved with ``save_pretrained`` (snapshot download).
    """
    text = check_model_name(model, "reward model") if model is not None else DEFAULT_REWARD_MODEL
    local = Path(text).expanduser()
    if local.is_file():
        if local.suffix not in (".pt", ".pth"):
            raise InvalidInputError(f"reward model '{text}' is a file but not an official .pt; pass a folder, hub id or .pt")
        digest = _file_digest(local)
        dest = converted_cache_dir() / f"file-{digest}"
        _convert_once(local, dest)
        return ResolvedModel(model_id=str(local), path=dest, revision=digest, source="local")
    if text in OFFICIAL_REWARD_FILES:
        return _resolve_official(text, OFFICIAL_REWARD_FILES[text], offline=is_offline(offline), revision=revision)
    return resolve_model(text, offline=offline, revision=revision, what="reward model")


def _resolve_official(model_id: str, filename: str, *, offline: bool, revision: str | None) -> ResolvedModel:
    root = converted_cache_dir() / model_id.replace("/", "--")
    if revision is not None and (root / revision / "config.json").is_file():
        return ResolvedModel(model_id=model_id, path=root / revision, revision=revision, source="hub")
    if offline:
        done = sorted((d for d in root.glob("*") if (d / "config.json").is_file()), key=lambda d: d.stat().st_mtime)
        if done and revision is None:
            return ResolvedModel(model_id=model_id, path=done[-1], revision=done[-1].name, source="hub")
    pt_path, commit = _download_official(model_id, filename, revision=revision, offline=offline)
    dest = root / commit
    _convert_once(pt_path, dest, lambda: _download_optional(model_id, V_INVERSE_FILE, revision=commit, offline=offline),
                  label=f"{model_id}@{commit[:10]}")
    return ResolvedModel(model_id=model_id, path=dest, revision=commit, source="hub")


def _convert_once(pt_path: Path, dest: Path, v_inverse=None, label: str | None = None) -> None:
    """Convert ``pt_path`` into the cache folder ``dest`` unless it is there, once across processes.

    Several processes (``torchrun`` ranks, parallel jobs) may ask for the same conversion at once: they
    serialise on a file lock beside ``dest``, and whoever gets it second finds the finished folder. The folder
    itself is written under a temporary name and renamed, so it is complete or absent.

    ``v_inverse``: a path, or a callable returning one (fetched only when a conversion is really needed).
    """
    from filelock import FileLock

    if (dest / "config.json").is_file():
        return
    # Read (and so check) the file first: a refused or broken file leaves no trace in the cache.
    sd = load_official_state_dict(pt_path)
    v_inv = v_inverse() if callable(v_inverse) else v_inverse
    if v_inv is not None:
        from .trust import load_official_v_inverse

        load_official_v_inverse(v_inv)
    dest.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(dest.parent / f".{dest.name}.lock"))
    with lock:
        if (dest / "config.json").is_file():
            return  # another process converted it while we waited
        _write_converted(sd, dest, v_inverse=v_inv, source=label or pt_path)
        # logged after success, so a refused file is one line (the error) and nothing else
        log.info("converted the official reward checkpoint %s (once; cached in %s)", label or pt_path, dest)


def _download_official(model_id: str, filename: str, *, revision: str | None, offline: bool) -> tuple[Path, str]:
    """Fetch (or find in the hub cache) the official ``.pt``; returns its path and the hub commit."""
    from huggingface_hub import hf_hub_download

    try:
        path = Path(hf_hub_download(model_id, filename, revision=revision, local_files_only=offline))
    except Exception as exc:
        where = "is not cached and offline mode is on" if offline else f"could not be downloaded ({exc.__class__.__name__})"
        raise ModelNotFoundError(
            f"reward model '{model_id}' ({filename}) {where}; run once with network, or convert a local copy with "
            "'prefpaint convert-reward prefpaintReward.pt -o DIR' and pass ", Arg("reward_model", "DIR")
        ) from exc
    return path, path.parent.name


def _download_optional(model_id: str, filename: str, *, revision: str | None, offline: bool) -> Path | None:
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(model_id, filename, revision=revision, local_files_only=offline))
    except Exception:  # noqa: BLE001 - optional file
        return None


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]

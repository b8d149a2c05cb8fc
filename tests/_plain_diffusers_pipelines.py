"""Inpainting pipelines of every family built and saved by plain diffusers/transformers/tokenizers code.

Nothing here imports ``prefpaint_sdk``: this is how a user (or the model's authors) would write a folder, so
loading it proves the toolkit reads folders it did not write. Shapes differ from ``prefpaint_sdk.testing``'s
fixtures on purpose (other VAE depth, other text widths, a T5 tokenizer built directly with ``tokenizers``).

Run as a script: ``python tests/_plain_diffusers_pipelines.py FAMILY FOLDER``.
"""

from __future__ import annotations

import sys

import torch


def _clip_tokenizer():
    from transformers import CLIPTokenizer

    chars = [chr(c) for c in range(33, 127)]
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": i + len(chars) for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def _clip_text(hidden, projection=False):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    n = len(_clip_tokenizer())
    cfg = CLIPTextConfig(bos_token_id=n - 2, eos_token_id=n - 1, pad_token_id=n - 1, hidden_size=hidden,
                         projection_dim=hidden, intermediate_size=37, num_attention_heads=2, num_hidden_layers=1,
                         vocab_size=n, max_position_embeddings=77)
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(cfg)


def _t5_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -1.0)]
    pieces += [(chr(c), -3.0) for c in range(33, 127)]
    tok = Tokenizer(models.Unigram(pieces, unk_id=2))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return T5TokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                           extra_ids=0, model_max_length=512)


def build(family: str):
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        FlowMatchEulerDiscreteScheduler,
        FluxFillPipeline,
        FluxTransformer2DModel,
        PNDMScheduler,
        StableDiffusionInpaintPipeline,
        StableDiffusionXLInpaintPipeline,
        UNet2DConditionModel,
    )

    torch.manual_seed(42)
    if family == "flux-fill":
        from transformers import T5Config, T5EncoderModel

        vae = AutoencoderKL(block_out_channels=(32, 32, 32), down_block_types=("DownEncoderBlock2D",) * 3,
                            up_block_types=("UpDecoderBlock2D",) * 3, latent_channels=2, norm_num_groups=8,
                            sample_size=48, use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.1,
                            scaling_factor=1.2)
        # 4x VAE, 2 latent channels: packed latents 8 + masked latents 8 + mask 4 * 4 * 4 = 80 input channels.
        transformer = FluxTransformer2DModel(patch_size=1, in_channels=80, out_channels=8, num_layers=1,
                                             num_single_layers=1, attention_head_dim=8, num_attention_heads=2,
                                             joint_attention_dim=16, pooled_projection_dim=24, guidance_embeds=True,
                                             axes_dims_rope=(2, 2, 4))
        tok2 = _t5_tokenizer()
        t5 = T5EncoderModel(T5Config(vocab_size=len(tok2), d_model=16, d_kv=4, d_ff=24, num_layers=1, num_heads=2))
        return FluxFillPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=_clip_text(24),
                                tokenizer=_clip_tokenizer(), text_encoder_2=t5, tokenizer_2=tok2,
                                transformer=transformer)
    vae = AutoencoderKL(block_out_channels=(16, 32, 32), down_block_types=("DownEncoderBlock2D",) * 3,
                        up_block_types=("UpDecoderBlock2D",) * 3, latent_channels=4, norm_num_groups=8)
    common = dict(block_out_channels=(32, 32), layers_per_block=1, sample_size=12, in_channels=9, out_channels=4,
                  down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), norm_num_groups=8,
                  up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=4)
    if family == "sd":
        unet = UNet2DConditionModel(cross_attention_dim=24, **common)
        return StableDiffusionInpaintPipeline(vae=vae, text_encoder=_clip_text(24), tokenizer=_clip_tokenizer(),
                                              unet=unet, scheduler=PNDMScheduler(skip_prk_steps=True, steps_offset=1),
                                              safety_checker=None, feature_extractor=None,
                                              requires_safety_checker=False)
    if family == "sdxl":
        unet = UNet2DConditionModel(cross_attention_dim=40, addition_embed_type="text_time",
                                    addition_time_embed_dim=4, projection_class_embeddings_input_dim=6 * 4 + 24,
                                    **common)
        return StableDiffusionXLInpaintPipeline(vae=vae, text_encoder=_clip_text(16), tokenizer=_clip_tokenizer(),
                                                text_encoder_2=_clip_text(24, projection=True),
                                                tokenizer_2=_clip_tokenizer(), unet=unet,
                                                scheduler=EulerDiscreteScheduler(steps_offset=1))
    raise ValueError(family)


def _qwen_tokenizer(vision: bool = False):
    """Byte-level BPE without merges, Qwen's special tokens and a one-turn chat template (written directly);
    ``vision=True`` adds Qwen2.5-VL's image tokens, which its processor and text encoder look for."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import Qwen2TokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {c: i for i, c in enumerate(sorted(alphabet))}
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    specials += ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>"] if vision else []
    for t in specials:
        vocab[t] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(specials)
    template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    return Qwen2TokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                              chat_template=template)


def build_blend(family: str):
    """The latent-blend families (Qwen-Image, FLUX.2 klein, Z-Image), their shapes unlike the toolkit's fixtures."""
    from diffusers import (
        AutoencoderKL,
        AutoencoderKLFlux2,
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        Flux2KleinInpaintPipeline,
        Flux2Transformer2DModel,
        QwenImageInpaintPipeline,
        QwenImageTransformer2DModel,
        ZImageInpaintPipeline,
        ZImageTransformer2DModel,
    )
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen3Config,
        Qwen3ForCausalLM,
        Qwen3Model,
    )

    torch.manual_seed(42)
    tok = _qwen_tokenizer()
    n = len(tok)
    if family == "qwen-image":
        cfg = Qwen2_5_VLConfig(text_config=dict(hidden_size=24, intermediate_size=24, num_hidden_layers=1,
                                                num_attention_heads=2, num_key_value_heads=2, vocab_size=n + 3,
                                                rope_scaling=dict(mrope_section=[2, 2, 2], rope_type="default",
                                                                  type="default")),
                               vision_config=dict(depth=1, hidden_size=8, intermediate_size=8, num_heads=2,
                                                  out_hidden_size=24),
                               hidden_size=24, vocab_size=n + 3, vision_start_token_id=n, vision_end_token_id=n + 1,
                               vision_token_id=n + 2)
        return QwenImageInpaintPipeline(
            scheduler=FlowMatchEulerDiscreteScheduler(), tokenizer=tok,
            vae=AutoencoderKLQwenImage(base_dim=8, z_dim=2, dim_mult=[1, 1], num_res_blocks=1,
                                       temperal_downsample=[False], latents_mean=[0.0] * 2, latents_std=[1.0] * 2),
            text_encoder=Qwen2_5_VLForConditionalGeneration(cfg),
            transformer=QwenImageTransformer2DModel(patch_size=2, in_channels=8, out_channels=2, num_layers=1,
                                                    attention_head_dim=8, num_attention_heads=2,
                                                    joint_attention_dim=24, axes_dims_rope=(4, 2, 2)))
    qwen3 = Qwen3Config(hidden_size=8, intermediate_size=8, num_hidden_layers=27 if family == "flux2-klein" else 2,
                        num_attention_heads=2, num_key_value_heads=1, head_dim=4, vocab_size=n)
    if family == "flux2-klein":
        return Flux2KleinInpaintPipeline(
            scheduler=FlowMatchEulerDiscreteScheduler(), tokenizer=tok, text_encoder=Qwen3ForCausalLM(qwen3),
            vae=AutoencoderKLFlux2(block_out_channels=(16, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                                   up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=2, norm_num_groups=8,
                                   layers_per_block=1, sample_size=48),
            transformer=Flux2Transformer2DModel(patch_size=1, in_channels=8, num_layers=1, num_single_layers=1,
                                                attention_head_dim=8, num_attention_heads=2, joint_attention_dim=24,
                                                axes_dims_rope=(2, 2, 2, 2), guidance_embeds=False))
    if family == "z-image":
        transformer = ZImageTransformer2DModel(all_patch_size=(2,), all_f_patch_size=(1,), in_channels=4, dim=16,
                                               n_layers=1, n_refiner_layers=1, n_heads=2, n_kv_heads=2,
                                               cap_feat_dim=8, axes_dims=[4, 2, 2], axes_lens=[512, 64, 64])
        with torch.no_grad():
            transformer.x_pad_token.zero_()
            transformer.cap_pad_token.zero_()
        return ZImageInpaintPipeline(
            scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), tokenizer=tok, text_encoder=Qwen3Model(qwen3),
            vae=AutoencoderKL(block_out_channels=(16, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                              up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=8,
                              sample_size=48, shift_factor=0.1, scaling_factor=0.5), transformer=transformer)
    raise ValueError(family)


def save_edit(folder: str) -> str:
    """Qwen-Image-Edit's inpainting pipeline, written as Qwen publishes it: ``model_index.json`` names
    ``("transformers", "Qwen2VLProcessor")`` and ``processor/`` holds the tokenizer's files beside the image
    processor's ``preprocessor_config.json``. transformers builds ``Qwen2VLProcessor`` only with torchvision (for
    its video processor), so without it the two parts are saved by their own ``save_pretrained``, as the
    processor's would. The VAE is 16x and narrow: the pipeline always works at a 1024x1024 area."""
    import json
    from pathlib import Path

    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImageEditInpaintPipeline,
        QwenImageTransformer2DModel,
    )
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(43)
    tok = _qwen_tokenizer(vision=True)
    n = len(tok)  # the last three ids: <|vision_start|>, <|vision_end|>, <|image_pad|>
    cfg = Qwen2_5_VLConfig(text_config=dict(hidden_size=24, intermediate_size=24, num_hidden_layers=1,
                                            num_attention_heads=2, num_key_value_heads=2, vocab_size=n,
                                            rope_scaling=dict(mrope_section=[2, 2, 2], rope_type="default",
                                                              type="default")),
                           vision_config=dict(depth=1, hidden_size=8, intermediate_size=8, num_heads=2,
                                              out_hidden_size=24),
                           hidden_size=24, vocab_size=n, vision_start_token_id=n - 3, vision_end_token_id=n - 2,
                           vision_token_id=n - 1, image_token_id=n - 1, video_token_id=n - 1)
    pipe = QwenImageEditInpaintPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(), tokenizer=tok, processor=None,
        vae=AutoencoderKLQwenImage(base_dim=2, z_dim=2, dim_mult=[1, 1, 1, 1, 1], num_res_blocks=0,
                                   temperal_downsample=[False, True, True, True], latents_mean=[0.0] * 2,
                                   latents_std=[1.0] * 2),
        text_encoder=Qwen2_5_VLForConditionalGeneration(cfg),
        transformer=QwenImageTransformer2DModel(patch_size=2, in_channels=8, out_channels=2, num_layers=1,
                                                attention_head_dim=8, num_attention_heads=2,
                                                joint_attention_dim=24, axes_dims_rope=(4, 2, 2)))
    pipe.save_pretrained(folder, safe_serialization=True)
    processor = Path(folder) / "processor"
    tok.save_pretrained(processor)
    (processor / "preprocessor_config.json").write_text(json.dumps(dict(
        image_processor_type="Qwen2VLImageProcessor", processor_class="Qwen2VLProcessor", min_pixels=28 * 28,
        max_pixels=56 * 56, patch_size=14, temporal_patch_size=2, merge_size=2, do_resize=True, do_rescale=True,
        rescale_factor=1 / 255, do_normalize=True, do_convert_rgb=True,
        image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711])))
    index = json.loads((Path(folder) / "model_index.json").read_text())
    (Path(folder) / "model_index.json").write_text(json.dumps({**index, "processor": ["transformers",
                                                                                       "Qwen2VLProcessor"]}))
    return folder


def save(family: str, folder: str) -> str:
    if family == "qwen-image-edit":
        return save_edit(folder)
    if family in ("qwen-image", "flux2-klein", "z-image"):
        build_blend(family).save_pretrained(folder, safe_serialization=True)
        return folder
    build(family).save_pretrained(folder, safe_serialization=True)
    return folder


if __name__ == "__main__":
    save(sys.argv[1], sys.argv[2])

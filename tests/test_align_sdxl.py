"""The Aligner trains SDXL inpainting through its engine's DDIM rollout: LoRA changes the UNet and nothing
frozen, and the exports load back as SDXL.

Not shown here: that learning happens. A 12-iteration cpu-smoke run on the brightness reward raised the
held-out reward for 1 training seed of 3 (lr 1e-2; 6e-4 and 3e-3 did not), so there is no learning test for
SDXL yet; the rollout itself is tested equal to the pipeline (tests/test_engine_rollout_sdxl.py)."""

import numpy as np
import torch
from _helpers_align import fast_config, make_data
from PIL import Image

from prefpaint_sdk import Inpainter
from prefpaint_sdk.align.trainer import Aligner
from prefpaint_sdk.testing import tiny_inpaint_pipeline


def test_sdxl_lora_run_trains_the_unet_and_exports_an_sdxl_pipeline(tmp_path):
    torch.set_num_threads(1)
    data = make_data(tmp_path / "data", n=4)
    al = Aligner(tiny_inpaint_pipeline(0, family="sdxl"), "brightness", fast_config(), data, tmp_path / "run",
                 device="cpu")
    assert al.engine.family == "sdxl"
    before = {k: v.detach().clone() for k, v in al.params.items()}
    frozen = {k: v.detach().clone() for k, v in al.pipe.text_encoder_2.state_dict().items()}
    al.train()
    assert any(not torch.equal(before[k], v) for k, v in al.params.items())  # trainable parameters changed
    assert all(torch.equal(frozen[k], v) for k, v in al.pipe.text_encoder_2.state_dict().items())  # frozen did not
    merged = al.export_merged(tmp_path / "merged")
    lora = al.export_lora(tmp_path / "lora")
    assert (lora / "pytorch_lora_weights.safetensors").is_file() or any(lora.glob("*.safetensors"))
    inp = Inpainter.from_pretrained(merged, device="cpu", dtype="float32", offline=True)
    assert inp.family == "sdxl"
    img = np.asarray(Image.open(next((data / "images").glob("*.png"))))
    hole = np.zeros(img.shape[:2], bool)
    hole[10:40, 10:40] = True
    out = inp(img, hole, seed=0, steps=2, mask_blur=0)
    assert np.array_equal(np.asarray(out.image)[~hole], img[~hole])

"""A randomly initialised CLIP with OpenAI's ViT-B sizes, for CPU/GPU cost benchmarks.

Image tower 224 x 224, width 768, 12 layers, 12 heads, patch ``patch_size`` (16: ViT-B/16, 32:
ViT-B/32); text tower width 512, 12 layers, 8 heads, 77 positions; joint space 512. The tokenizer
is lookright's corpus tokenizer over the words the benchmarks use, with the text tower's begin and
end token ids set from it (CLIP pools at the end token).
"""

from __future__ import annotations

import tempfile

import torch


def openai_sized_clip(patch_size: int, name: str):
    from transformers import CLIPConfig, CLIPModel

    from lookright.data.shapes import ShapesConfig, generate_shapes
    from lookright.vlm.backends import hf_bundle
    from lookright.vlm.corpus import DIGIT_NAMES
    from lookright.vlm.reliability.conflicts import UNRELATED
    from lookright.vlm.tokenizer import BOS, EOS, build_tokenizer

    words = (generate_shapes(300, 0, ShapesConfig(image_size=32)).captions + list(UNRELATED)
             + ["a handwritten digit " + " ".join(DIGIT_NAMES) + " background black dark"])
    tok = build_tokenizer(words, tempfile.mkdtemp())
    bos, eos = tok.convert_tokens_to_ids([BOS, EOS])
    cfg = CLIPConfig(text_config=dict(vocab_size=len(tok), hidden_size=512, intermediate_size=2048, num_hidden_layers=12,
                                      num_attention_heads=8, max_position_embeddings=77, bos_token_id=bos,
                                      eos_token_id=eos, pad_token_id=eos),
                     vision_config=dict(image_size=224, patch_size=patch_size, hidden_size=768, intermediate_size=3072,
                                        num_hidden_layers=12, num_attention_heads=12), projection_dim=512)
    torch.manual_seed(0)
    return hf_bundle(CLIPModel(cfg).eval(), tok, (0.5,) * 3, (0.5,) * 3, name)

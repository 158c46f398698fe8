"""Dense modality encoders: each maps its raw input to one embedding (batch, dim).

- text: a Transformer over token ids (learned token and position embeddings,
  projected to the model width, a [CLS] token whose final state is the embedding);
- images: a ViT — non-overlapping patches, linearly embedded, [CLS] + learned
  positions, Transformer layers;
- audio: a CNN over a (1, freq, time) spectrogram, conv + batch norm + GELU
  blocks that halve both axes, global average pooling, a linear projection.

Every encoder ends in a LayerNorm without affine parameters, so embeddings of
all modalities have the same scale before the memories see them.
"""

from __future__ import annotations

import torch
from torch import nn


def transformer(dim: int, layers: int, heads: int, mlp_ratio: float, dropout: float) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        dim, heads, dim_feedforward=int(dim * mlp_ratio), dropout=dropout, activation="gelu",
        batch_first=True, norm_first=True,
    )  # fmt: skip
    # nested tensors are a fast path for padded inference only; off keeps train and eval numerics alike
    return nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(dim), enable_nested_tensor=False)


class TextEncoder(nn.Module):
    """Token ids (B, L) with `pad_id` padding, L <= max_length -> (B, dim).

    Tokens are embedded at `embed_dim` (with learned positions) and projected
    to the Transformer's width `dim` when the two differ."""

    def __init__(self, vocab_size: int, max_length: int, embed_dim: int, dim: int, layers: int, heads: int,
                 mlp_ratio: float = 4.0, dropout: float = 0.0, pad_id: int = 0) -> None:  # fmt: skip
        super().__init__()
        self.pad_id, self.max_length, self.vocab_size = pad_id, max_length, vocab_size
        self.tokens = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.cls = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.positions = nn.Parameter(torch.randn(1, max_length + 1, embed_dim) * 0.02)
        self.project = nn.Identity() if embed_dim == dim else nn.Linear(embed_dim, dim)
        self.body = transformer(dim, layers, heads, mlp_ratio, dropout)
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        if token_ids.ndim != 2 or token_ids.dtype.is_floating_point:
            raise ValueError(f"text must be integer token ids (B, seq_len); got {tuple(token_ids.shape)} {token_ids.dtype}")
        batch, length = token_ids.shape
        if length > self.max_length:
            raise ValueError(f"text of {length} tokens is longer than text_seq_len={self.max_length}")
        x = torch.cat([self.cls.expand(batch, -1, -1), self.tokens(token_ids)], dim=1) + self.positions[:, : length + 1]
        padding = torch.cat([token_ids.new_zeros(batch, 1, dtype=torch.bool), token_ids == self.pad_id], dim=1)
        return self.norm(self.body(self.project(x), src_key_padding_mask=padding)[:, 0])


class ViTEncoder(nn.Module):
    """Images (B, C, H, W) with H = W = image_size -> (B, dim)."""

    def __init__(self, image_size: int, patch_size: int, channels: int, dim: int, layers: int, heads: int,
                 mlp_ratio: float = 4.0, dropout: float = 0.0) -> None:  # fmt: skip
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size={image_size} must be a multiple of patch_size={patch_size}")
        self.image_size, self.channels = image_size, channels
        num_patches = (image_size // patch_size) ** 2
        self.patches = nn.Conv2d(channels, dim, kernel_size=patch_size, stride=patch_size)  # = linear patch embedding
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.positions = nn.Parameter(torch.randn(1, num_patches + 1, dim) * 0.02)
        self.body = transformer(dim, layers, heads, mlp_ratio, dropout)
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1:] != (self.channels, self.image_size, self.image_size):
            raise ValueError(f"images must be (B, {self.channels}, {self.image_size}, {self.image_size}); got {tuple(images.shape)}")
        x = self.patches(images).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(len(x), -1, -1), x], dim=1) + self.positions
        return self.norm(self.body(x)[:, 0])


class SpectrogramEncoder(nn.Module):
    """Spectrograms (B, in_channels, freq, time), any freq and time -> (B, dim), through len(widths)
    conv blocks with batch norm."""

    def __init__(self, widths: tuple[int, ...], dim: int, in_channels: int = 1) -> None:
        super().__init__()
        self.in_channels = in_channels
        blocks, previous = [], in_channels
        for width in widths:
            blocks += [nn.Conv2d(previous, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.GELU()]
            previous = width
        self.body = nn.Sequential(*blocks)
        self.project = nn.Linear(previous, dim)
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)

    def forward(self, spectrograms: torch.Tensor) -> torch.Tensor:
        if spectrograms.ndim != 4 or spectrograms.shape[1] != self.in_channels:
            raise ValueError(f"spectrograms must be (B, {self.in_channels}, freq, time); got {tuple(spectrograms.shape)}")
        return self.norm(self.project(self.body(spectrograms).mean((2, 3))))

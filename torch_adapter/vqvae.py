"""The reference VQ-VAE (docs/design.md section 9) around any torch_adapter VQ layer.

Encoder: ``n_downsample`` 4x4 stride-2 convolutions (channels h/2 ... h),
a 3x3 convolution, ``n_residual`` residual blocks, ReLU and a 1x1
convolution to D channels.  Decoder: the mirror image, with transposed
convolutions.  With the reference settings (h=128, r=32, D=64, two
down-samplings) 32x32 images become 8x8 latent maps.

The loss is MSE(x_hat, x) plus the layer's commitment loss
beta * MSE(z, sg[q]); the codebook has no gradient and learns by the
layer's own EMA / KSOM rule, and the decoder sees the straight-through
q_st = z + sg(q - z).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F


class ResidualBlock(nn.Module):
    """x + conv1x1(ReLU(conv3x3(ReLU(x)))), both convolutions without bias."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.conv3 = nn.Conv2d(channels, hidden, 3, padding=1, bias=False)
        self.conv1 = nn.Conv2d(hidden, channels, 1, bias=False)

    def forward(self, x):
        return x + self.conv1(F.relu(self.conv3(F.relu(x))))


def _stage_widths(hidden: int, n_downsample: int) -> list[int]:
    """Channel widths after each stride-2 stage: ..., h/4, h/2, h."""
    return [max(hidden // 2 ** (n_downsample - 1 - i), 1) for i in range(n_downsample)]


class Encoder(nn.Sequential):
    def __init__(self, in_channels, hidden, residual_hidden, n_residual, n_downsample, dim):
        layers = []
        channels = in_channels
        for width in _stage_widths(hidden, n_downsample):
            layers += [nn.Conv2d(channels, width, 4, stride=2, padding=1), nn.ReLU()]
            channels = width
        layers.append(nn.Conv2d(channels, hidden, 3, padding=1))
        layers += [ResidualBlock(hidden, residual_hidden) for _ in range(n_residual)]
        layers += [nn.ReLU(), nn.Conv2d(hidden, dim, 1)]
        super().__init__(*layers)


class Decoder(nn.Sequential):
    def __init__(self, out_channels, hidden, residual_hidden, n_residual, n_downsample, dim):
        layers = [nn.Conv2d(dim, hidden, 3, padding=1)]
        layers += [ResidualBlock(hidden, residual_hidden) for _ in range(n_residual)]
        widths = _stage_widths(hidden, n_downsample)[::-1]  # h, h/2, ...
        for i, width in enumerate(widths):
            following = widths[i + 1] if i + 1 < len(widths) else out_channels
            layers += [nn.ReLU(), nn.ConvTranspose2d(width, following, 4, stride=2, padding=1)]
        super().__init__(*layers)


class VQVAEOutput(NamedTuple):
    reconstruction: torch.Tensor
    loss: torch.Tensor  # reconstruction MSE + commitment loss
    reconstruction_loss: torch.Tensor
    latents: torch.Tensor  # the encoder's output z, before quantisation
    quantizer: tuple  # the layer's VQOutput


class VQVAE(nn.Module):
    """Encoder, VQ bottleneck, decoder (docs/design.md section 9).

    Parameters
    ----------
    quantizer : nn.Module
        A torch_adapter VQ layer (``KohonenVQ`` or ``EMAVQ``) built with
        ``channels_first=True``; its ``dim`` is the latent depth D.
    in_channels : int
        Image channels (3 for colour, 1 for grey).
    hidden : int, default=128
        Width h of the encoder and decoder.
    residual_hidden : int, default=32
        Width r inside each residual block.
    n_residual : int, default=2
        Residual blocks in the encoder and in the decoder.
    n_downsample : int, default=2
        Stride-2 stages: latent maps are 2**n_downsample times smaller
        than the images.
    """

    def __init__(self, quantizer: nn.Module, in_channels: int = 3, *, hidden: int = 128,
                 residual_hidden: int = 32, n_residual: int = 2, n_downsample: int = 2):
        super().__init__()
        if not getattr(quantizer, "channels_first", True):
            raise ValueError("The VQ-VAE's quantizer works on (B, D, H, W) maps: build it with channels_first=True.")
        if n_downsample < 1 or hidden < 2 ** (n_downsample - 1):
            raise ValueError(
                f"n_downsample must be >= 1 and hidden >= 2**(n_downsample - 1), got n_downsample={n_downsample}, "
                f"hidden={hidden}."
            )
        dim = quantizer.codebook.shape[1]
        self.n_downsample = n_downsample
        self.encoder = Encoder(in_channels, hidden, residual_hidden, n_residual, n_downsample, dim)
        self.quantizer = quantizer
        self.decoder = Decoder(in_channels, hidden, residual_hidden, n_residual, n_downsample, dim)

    def check_images(self, x: torch.Tensor):
        factor = 2**self.n_downsample
        if x.ndim != 4 or x.shape[2] % factor or x.shape[3] % factor:
            raise ValueError(
                f"Images must be (B, C, H, W) with H and W multiples of {factor} "
                f"(n_downsample={self.n_downsample}), got shape {tuple(x.shape)}."
            )

    def encode(self, x: torch.Tensor):
        """Images -> the layer's output (quantized latents, codes, ...)."""
        self.check_images(x)
        return self.quantizer(self.encoder(x))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encode(x).quantized)

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Code maps (B, H, W) -> images."""
        return self.decoder(self.quantizer.embed(codes))

    def forward(self, x: torch.Tensor) -> VQVAEOutput:
        self.check_images(x)
        latents = self.encoder(x)
        quantized = self.quantizer(latents)
        reconstruction = self.decoder(quantized.quantized)
        reconstruction_loss = F.mse_loss(reconstruction, x)
        loss = reconstruction_loss + quantized.loss
        return VQVAEOutput(reconstruction, loss, reconstruction_loss, latents, quantized)

"""PyTorch front end of sklearn-ksom: VQ layers for VQ-VAEs on the shared core."""

from .layers import EMAVQ, KohonenVQ, VQOutput

__all__ = ["EMAVQ", "KohonenVQ", "VQOutput"]

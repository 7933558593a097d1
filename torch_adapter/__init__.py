"""PyTorch front end of sklearn-ksom: VQ layers for VQ-VAEs on the shared core.

- :mod:`.layers`: :class:`KohonenVQ`, :class:`EMAVQ` (the bottlenecks);
- :mod:`.vqvae`: the reference VQ-VAE around them;
- :mod:`.data`: image data sets (bundled photos and digits, MNIST, Fashion-MNIST, CIFAR-10);
- :mod:`.train`: training loop, metrics log, checkpoints, resume, torchrun;
- :mod:`.pictures`, :mod:`.demo`: the plots and the demo report;
- :mod:`.cli`: the ``ksom-vqvae`` command (``python -m torch_adapter``).
"""

from .layers import EMAVQ, KohonenVQ, VQOutput

__all__ = ["EMAVQ", "KohonenVQ", "VQOutput"]

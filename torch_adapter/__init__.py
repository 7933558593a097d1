"""PyTorch front end of sklearn-ksom: VQ layers for VQ-VAEs on the shared core.

- :mod:`.layers`: :class:`KohonenVQ`, :class:`EMAVQ` (the bottlenecks);
- :mod:`.vqvae`: the reference VQ-VAE around them;
- :mod:`.data`: image data sets (bundled photos and digits, MNIST, Fashion-MNIST, CIFAR-10);
- :mod:`.train`: training loop, metrics log, checkpoints, resume, torchrun;
- :mod:`.pictures`, :mod:`.demo`: the plots and the demo report;
- :mod:`.cli`: the ``ksom-vqvae`` command (``python -m torch_adapter``).
"""

__all__ = ["EMAVQ", "KohonenVQ", "VQOutput"]


def __getattr__(name):
    # The layers load on first use, so that `ksom-vqvae` (torch_adapter.cli)
    # starts without PyTorch and can say which extra to install.
    if name in __all__:
        from . import layers

        return getattr(layers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

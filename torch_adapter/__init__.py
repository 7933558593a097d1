"""PyTorch front end of sklearn-ksom: VQ layers for VQ-VAEs on the shared core."""

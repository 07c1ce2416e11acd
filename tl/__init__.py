"""tl: a minimal PyTorch reference implementation of TL-Training (Ye et al., EMNLP 2025)."""

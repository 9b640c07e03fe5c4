"""rlntp: a reproducible study of RL after next-token prediction (Tsilivis et al., ICLR 2026)."""

__version__ = "0.1.0"

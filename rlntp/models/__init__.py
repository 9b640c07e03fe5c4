"""Models: a small GPT-2-style decoder (``gpt``) and autoregressive linear models (``linear``)."""

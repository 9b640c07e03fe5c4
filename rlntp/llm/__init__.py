"""Pretrained language models with the Hugging Face stack (chapter 5): ``models`` (SmolLM2,
a tiny random Llama, hub models), ``rewards`` (GSM8K / MATH correctness), ``train`` (TRL SFT and
GRPO, greedy evaluation)."""

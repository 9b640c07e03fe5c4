"""TRL's ``GRPOTrainer`` on our parity task, offline, as the baseline of one GRPO iteration.

TRL wants text: a dataset of prompt strings, a tokenizer, reward functions of completions. The
parity task has three tokens, so the tokenizer is a word-level one built in memory
(``"0" -> 0, "1" -> 1, "<eos>" -> 2``, split on spaces, no special tokens added): a prompt
``"1 0 1 1"`` tokenizes to exactly the ids our model reads, and the completion ids TRL hands the
reward function go back into the task's own :meth:`~rlntp.task.Task.reward`. The model is our GPT's
weights in a ``GPT2LMHeadModel`` (:func:`rlntp.models.hf_gpt2.to_hf_gpt2`). Nothing is downloaded.

:data:`DIFFERENCES` lists what is not the same as our loop (it goes into results.json).
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from typing import Any

import torch

from rlntp.config import RLLoopPart
from rlntp.data.parity import EOS, ParityTask
from rlntp.models.gpt import GPT
from rlntp.models.hf_gpt2 import to_hf_gpt2
from rlntp.task import response_lengths

DIFFERENCES = [
    "TRL runs inside transformers' Trainer (accelerate, a DataLoader over a fixed, shuffled set of "
    "prompt strings, per-step metrics such as entropy); ours draws fresh prompt tensors each iteration",
    "TRL samples with GPT2LMHeadModel.generate (sdpa attention, top_k=0, top_p=1); ours with "
    "rlntp.models.gpt.generate; both at the same temperature and max completion length",
    "with num_iterations=1 TRL takes the old log-probs from the update's own forward pass (detached); "
    "ours spends one more forward pass on them right after sampling (rlntp.rl.rollout)",
    "TRL's gradient checkpointing and bf16 (its defaults) are off: fp32 and plain backward, as ours",
    "AdamW: TRL (transformers) decays all weights but biases and LayerNorms, ours all tensors with "
    "dim >= 2 (the same set here); same lr, betas, weight decay, eps, gradient clipping; constant lr",
    "TRL's reward decodes nothing: it rebuilds the response tensor from completion_ids and calls the "
    "same task.reward('e2e')",
]


def offline() -> None:
    """Keep the Hugging Face libraries off the network (call before importing them)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def parity_tokenizer() -> Any:
    """A ``PreTrainedTokenizerFast`` for the parity vocabulary, built in memory."""
    offline()
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({"0": 0, "1": 1, "<eos>": EOS}, unk_token="<eos>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<eos>")


def prompt_text(prompts: torch.Tensor) -> list[str]:
    """Prompt rows of bits as TRL's dataset strings: ``"1 0 1 1"``."""
    return [" ".join(map(str, row)) for row in prompts.tolist()]


def make_reward(task: ParityTask, kind: str = "e2e"):
    """A TRL reward function: the task's reward of ``kind`` from the completion ids."""

    def parity_reward(prompts: list[str], completions: list[str], completion_ids: list[list[int]],
                      **_: Any) -> list[float]:
        x = torch.tensor([[int(t) for t in p.split()] for p in prompts])
        resp = torch.full((len(completion_ids), task.max_new_tokens), EOS)
        for i, ids in enumerate(completion_ids):
            resp[i, :len(ids)] = torch.tensor(ids, dtype=torch.long)
        return task.reward(x, resp, response_lengths(resp, EOS), kind).tolist()

    return parity_reward


def grpo_trainer(model: GPT, task: ParityTask, cfg: RLLoopPart, steps: int, seed: int = 0,
                 out_dir: str | None = None) -> tuple[Any, list[float]]:
    """A ``GRPOTrainer`` for ``steps`` iterations of ``cfg.prompts_per_iter`` prompts x
    ``cfg.num_generations``, and the list its callback appends ``perf_counter()`` to at each step end."""
    offline()
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from transformers.utils import logging as hf_logging
    from trl import GRPOConfig, GRPOTrainer

    hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    stamps: list[float] = []

    class StepClock(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            stamps.append(time.perf_counter())

    gen = torch.Generator().manual_seed(seed)
    prompts = task.sample_prompts(cfg.prompts_per_iter * steps, gen)
    args = GRPOConfig(
        output_dir=out_dir or tempfile.mkdtemp(prefix="rlntp-trl-"),
        per_device_train_batch_size=cfg.prompts_per_iter * cfg.num_generations,
        num_generations=cfg.num_generations, max_completion_length=task.max_new_tokens,
        temperature=cfg.temperature, top_k=0, top_p=1.0, learning_rate=cfg.learning_rate,
        lr_scheduler_type="constant", warmup_steps=0, beta=cfg.beta, epsilon=cfg.epsilon,
        num_iterations=cfg.num_iterations, loss_type="grpo", scale_rewards="group",
        weight_decay=cfg.weight_decay, adam_beta1=cfg.adam_beta1, adam_beta2=cfg.adam_beta2,
        max_grad_norm=cfg.max_grad_norm, max_steps=steps, bf16=False, gradient_checkpointing=False,
        use_cpu=not torch.cuda.is_available(), report_to="none", logging_steps=10**9,
        save_strategy="no", disable_tqdm=True, seed=seed, dataloader_num_workers=0,
    )
    hf = to_hf_gpt2(model)
    hf.generation_config.eos_token_id = EOS
    trainer = GRPOTrainer(model=hf, reward_funcs=make_reward(task), args=args,
                          train_dataset=Dataset.from_dict({"prompt": prompt_text(prompts)}),
                          processing_class=parity_tokenizer(), callbacks=[StepClock()])
    trainer.remove_callback(PrinterCallback)  # the end-of-training metrics dict, printed
    return trainer, stamps


def trl_iteration_times(model: GPT, task: ParityTask, cfg: RLLoopPart, warmup: int, iters: int,
                        seed: int = 0) -> tuple[list[float], float | None]:
    """Seconds of each of ``iters`` GRPO iterations of TRL after ``warmup`` (from step end to
    step end: the prompt batch, generation, rewards, loss, backward and optimizer step), and the
    mean completion length TRL logged over the run (EOS included)."""
    trainer, stamps = grpo_trainer(model, task, cfg, warmup + iters + 1, seed)
    start = time.perf_counter()
    trainer.train()
    stamps = [start, *stamps]
    logged = [h["completions/mean_length"] for h in trainer.state.log_history
              if "completions/mean_length" in h]
    times = [b - a for a, b in zip(stamps, stamps[1:], strict=False)][warmup + 1:]
    return times, (float(logged[-1]) if logged else None)

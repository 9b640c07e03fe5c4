"""SFT on the short/long mixture, GRPO from an SFT checkpoint, and greedy evaluation, with TRL.

This is the Hugging Face stack as its users run it: ``trl.SFTTrainer`` on prompt-completion
records (loss on the completion only), ``trl.GRPOTrainer`` with the end-to-end correctness reward,
and ``model.generate`` for greedy test metrics. The same code runs on CPU (``use_cpu=True``,
fp32) and on one or several GPUs (bf16; several through ``accelerate launch``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer, TrainerCallback
from transformers.trainer_callback import PrinterCallback
from trl import GRPOConfig, GRPOTrainer, SFTConfig, SFTTrainer

from rlntp.config import RLPart
from rlntp.data.math_text import is_long
from rlntp.llm.rewards import CORRECT, correctness_reward


@dataclass(frozen=True)
class TrainSettings:
    """What SFT, GRPO and evaluation share (taken from the chapter's config)."""

    dataset: str
    device: str  # "cpu" or "cuda..."
    bf16: bool
    max_completion_length: int
    eval_batch_size: int
    seed: int


def quiet() -> None:
    """No progress bars, per-step log dicts or deprecation notices from the HF libraries."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    warnings.filterwarnings("ignore", message=".*will be removed in v6", category=FutureWarning)


def _train(trainer: Trainer) -> None:
    trainer.remove_callback(PrinterCallback)
    trainer.train()


@torch.no_grad()
def generate_greedy(model: PreTrainedModel, tok: PreTrainedTokenizerBase, prompts: list[str],
                    max_new_tokens: int, batch_size: int) -> tuple[list[str], list[int]]:
    """Greedy responses to ``prompts`` and their lengths in tokens (EOS excluded)."""
    was_training = model.training
    model.eval()
    texts, lengths = [], []
    eos = set(model.generation_config.eos_token_id if isinstance(
        model.generation_config.eos_token_id, list) else [model.generation_config.eos_token_id])
    for i in range(0, len(prompts), batch_size):
        # special tokens as TRL adds them in training (a BOS for Llama 3, none for SmolLM2)
        batch = tok(prompts[i:i + batch_size], return_tensors="pt", padding=True).to(model.device)
        out = model.generate(**batch, do_sample=False, max_new_tokens=max_new_tokens,
                             pad_token_id=tok.pad_token_id, top_p=None, top_k=None,
                             temperature=None)
        for row in out[:, batch["input_ids"].shape[1]:].tolist():
            n = next((j for j, t in enumerate(row) if t in eos), len(row))
            lengths.append(n)
            texts.append(tok.decode(row[:n], skip_special_tokens=True))
    model.train(was_training)
    return texts, lengths


def evaluate(model: PreTrainedModel, tok: PreTrainedTokenizerBase, test: list[dict[str, str]],
             s: TrainSettings) -> dict[str, float]:
    """Greedy test metrics: acc_greedy, len_mean_greedy (tokens), frac_long_greedy."""
    texts, lengths = generate_greedy(model, tok, [r["prompt"] for r in test],
                                     s.max_completion_length, s.eval_batch_size)
    correct = CORRECT[s.dataset]
    n = len(test)
    return {
        "acc_greedy": sum(correct(t, r["answer"]) for t, r in zip(texts, test, strict=True)) / n,
        "len_mean_greedy": sum(lengths) / n,
        "frac_long_greedy": sum(is_long(t, s.dataset) for t in texts) / n,
    }


def _common_args(s: TrainSettings, out_dir: Path, lr: float) -> dict[str, Any]:
    return dict(
        output_dir=str(out_dir), learning_rate=lr, lr_scheduler_type="constant", warmup_steps=0,
        use_cpu=s.device == "cpu", bf16=s.bf16, activation_checkpointing=s.device != "cpu",
        save_strategy="no", report_to="none", seed=s.seed, data_seed=s.seed,
        disable_tqdm=True, dataloader_num_workers=0,
    )


class _SaveEpochs(TrainerCallback):
    """Save the model (and tokenizer) at the chosen epochs: ``out_dir/epoch_E``."""

    def __init__(self, out_dir: Path, epochs: tuple[int, ...], tok: PreTrainedTokenizerBase):
        self.out_dir, self.epochs, self.tok = out_dir, set(epochs), tok

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        epoch = round(state.epoch)
        if epoch in self.epochs and state.is_world_process_zero:
            model.save_pretrained(self.out_dir / f"epoch_{epoch}")
            self.tok.save_pretrained(self.out_dir / f"epoch_{epoch}")


def sft(model: PreTrainedModel, tok: PreTrainedTokenizerBase, records: list[dict[str, str]],
        s: TrainSettings, out_dir: Path, epochs: int, checkpoints: tuple[int, ...], lr: float,
        batch_size: int) -> dict[int, float]:
    """Fine-tune on prompt-completion ``records`` for ``epochs``; save ``out_dir/epoch_E`` for E in
    ``checkpoints``. Returns the mean training loss of each epoch."""
    args = SFTConfig(**_common_args(s, out_dir, lr), num_train_epochs=epochs,
                     per_device_train_batch_size=batch_size, logging_strategy="epoch",
                     completion_only_loss=True, max_length=1024, packing=False)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(records),
                         processing_class=tok, callbacks=[_SaveEpochs(out_dir, checkpoints, tok)])
    _train(trainer)
    trainer.accelerator.wait_for_everyone()  # every process reads the checkpoints next
    return {round(h["epoch"]): h["loss"] for h in trainer.state.log_history if "loss" in h}


class _EvalEvery(TrainerCallback):
    """Greedy evaluation every ``every`` GRPO steps (and at the last step)."""

    def __init__(self, every: int, evaluate_fn):
        self.every, self.evaluate_fn, self.results = every, evaluate_fn, {}

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            self.results[state.global_step] = self.evaluate_fn(model)


def grpo(model: PreTrainedModel, tok: PreTrainedTokenizerBase, train: list[dict[str, str]],
         test: list[dict[str, str]], s: TrainSettings, out_dir: Path, cfg: RLPart
         ) -> dict[int, dict[str, float]]:
    """GRPO with the correctness reward, ``cfg.rl_iters`` steps of ``cfg.prompts_per_iter``
    prompts x ``cfg.num_generations`` samples (``cfg.num_iterations`` updates per batch).

    Returns {step: metrics}: greedy test metrics at step 0, every ``eval_every`` steps and at the
    end; from TRL's log of every step, ``reward_mean``, ``loss`` and ``frac_reward_zero_std``
    (the fraction of prompts whose samples all got the same reward: no gradient from them).
    """
    args = GRPOConfig(
        **_common_args(s, out_dir, cfg.learning_rate), max_steps=cfg.rl_iters,
        per_device_train_batch_size=cfg.rl_batch, gradient_accumulation_steps=1,
        num_generations=cfg.num_generations, num_iterations=cfg.num_iterations,
        epsilon=cfg.epsilon, max_completion_length=s.max_completion_length,
        temperature=cfg.temperature, loss_type="grpo", beta=cfg.beta, scale_rewards="group",
        logging_steps=1, log_completions=False,
    )
    callback = _EvalEvery(cfg.eval_every, lambda m: evaluate(m, tok, test, s))
    results = {0: evaluate(model, tok, test, s)}
    trainer = GRPOTrainer(model=model, reward_funcs=correctness_reward(s.dataset), args=args,
                          train_dataset=Dataset.from_list(train), processing_class=tok,
                          callbacks=[callback])
    _train(trainer)
    results.update(callback.results)
    for h in trainer.state.log_history:  # TRL logs every step
        if "reward" in h:
            results.setdefault(h["step"], {}).update(
                reward_mean=h["reward"], loss=h.get("loss", math.nan),
                frac_reward_zero_std=h.get("frac_reward_zero_std", math.nan))
    return dict(sorted(results.items()))

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
def generate(model: PreTrainedModel, tok: PreTrainedTokenizerBase, prompts: list[str],
             max_new_tokens: int, batch_size: int, temperature: float | None = None
             ) -> tuple[list[str], list[int]]:
    """Responses to ``prompts`` (greedy, or sampled at ``temperature``) and their lengths in
    tokens (EOS excluded)."""
    was_training = model.training
    model.eval()
    texts, lengths = [], []
    eos = set(model.generation_config.eos_token_id if isinstance(
        model.generation_config.eos_token_id, list) else [model.generation_config.eos_token_id])
    mode = (dict(do_sample=False, temperature=None) if temperature is None else
            dict(do_sample=True, temperature=temperature))
    for i in range(0, len(prompts), batch_size):
        # special tokens as TRL adds them in training (a BOS for Llama 3, none for SmolLM2)
        batch = tok(prompts[i:i + batch_size], return_tensors="pt", padding=True).to(model.device)
        out = model.generate(**batch, **mode, max_new_tokens=max_new_tokens,
                             pad_token_id=tok.pad_token_id, top_p=None, top_k=None)
        for row in out[:, batch["input_ids"].shape[1]:].tolist():
            n = next((j for j, t in enumerate(row) if t in eos), len(row))
            lengths.append(n)
            texts.append(tok.decode(row[:n], skip_special_tokens=True))
    model.train(was_training)
    return texts, lengths


def greedy(model: PreTrainedModel, tok: PreTrainedTokenizerBase, test: list[dict[str, str]],
           s: TrainSettings) -> tuple[dict[str, float], list[str]]:
    """Greedy test metrics (acc_greedy, len_mean_greedy in tokens, frac_long_greedy and
    frac_truncated_greedy: responses cut at ``max_completion_length``) and the responses."""
    texts, lengths = generate(model, tok, [r["prompt"] for r in test], s.max_completion_length,
                              s.eval_batch_size)
    correct = CORRECT[s.dataset]
    n = len(test)
    return {
        "acc_greedy": sum(correct(t, r["answer"]) for t, r in zip(texts, test, strict=True)) / n,
        "len_mean_greedy": sum(lengths) / n,
        "frac_long_greedy": sum(is_long(t, s.dataset) for t in texts) / n,
        "frac_truncated_greedy": sum(n_ >= s.max_completion_length for n_ in lengths) / n,
    }, texts


def evaluate(model: PreTrainedModel, tok: PreTrainedTokenizerBase, test: list[dict[str, str]],
             s: TrainSettings) -> dict[str, float]:
    """The greedy test metrics of :func:`greedy`."""
    return greedy(model, tok, test, s)[0]


def sample_correct(model: PreTrainedModel, tok: PreTrainedTokenizerBase,
                   records: list[dict[str, str]], k: int, temperature: float, s: TrainSettings
                   ) -> tuple[list[int], dict[str, float]]:
    """``k`` responses per record sampled at ``temperature`` (seeded by ``s.seed``): the number
    correct per record, and the accuracy and count of the long and of the short responses
    (acc_sample_long, n_sample_long, acc_sample_short, n_sample_short; accuracy NaN if none)."""
    torch.manual_seed(s.seed)
    prompts = [r["prompt"] for r in records for _ in range(k)]
    texts, _ = generate(model, tok, prompts, s.max_completion_length, s.eval_batch_size,
                        temperature)
    correct = CORRECT[s.dataset]
    right = [correct(t, records[i // k]["answer"]) for i, t in enumerate(texts)]
    long = [is_long(t, s.dataset) for t in texts]
    metrics = {}
    for name, want in (("long", True), ("short", False)):
        hits = [r for r, is_l in zip(right, long, strict=True) if is_l == want]
        metrics[f"acc_sample_{name}"] = sum(hits) / len(hits) if hits else math.nan
        metrics[f"n_sample_{name}"] = float(len(hits))
    metrics["frac_long_sample"] = sum(long) / len(long)
    return [sum(right[i:i + k]) for i in range(0, len(right), k)], metrics


def _common_args(s: TrainSettings, out_dir: Path, lr: float, schedule: str = "constant"
                 ) -> dict[str, Any]:
    return dict(
        output_dir=str(out_dir), learning_rate=lr, lr_scheduler_type=schedule, warmup_steps=0,
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
        batch_size: int, callbacks: tuple[TrainerCallback, ...] = (), schedule: str = "constant"
        ) -> dict[int, float]:
    """Fine-tune on prompt-completion ``records`` for ``epochs`` (shuffled, seeded; learning rate
    ``schedule`` "constant" or "linear" to 0); save ``out_dir/epoch_E`` for E in ``checkpoints``.
    Returns the mean training loss of each epoch."""
    args = SFTConfig(**_common_args(s, out_dir, lr, schedule), num_train_epochs=epochs,
                     per_device_train_batch_size=batch_size, logging_strategy="epoch",
                     completion_only_loss=True, max_length=1024, packing=False)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(records),
                         processing_class=tok,
                         callbacks=[_SaveEpochs(out_dir, checkpoints, tok), *callbacks])
    _train(trainer)
    trainer.accelerator.wait_for_everyone()  # every process reads the checkpoints next
    return {round(h["epoch"]): h["loss"] for h in trainer.state.log_history if "loss" in h}


class _EvalAndStop(TrainerCallback):
    """Greedy evaluation every ``every`` GRPO steps and at the last step; stop after ``flat``
    logged steps in a row where no group had reward variance (0: never), evaluating there."""

    def __init__(self, every: int, flat: int, evaluate_fn):
        self.every, self.flat, self.evaluate_fn = every, flat, evaluate_fn
        self.results: dict[int, dict[str, float]] = {}
        self.run = 0  # flat steps in a row
        self.stopped_at: int | None = None

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            self.results[state.global_step] = self.evaluate_fn(model)

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        if "frac_reward_zero_std" not in (logs or {}):
            return
        self.run = self.run + 1 if logs["frac_reward_zero_std"] >= 1 else 0
        if self.flat and self.run >= self.flat and state.global_step < state.max_steps:
            control.should_training_stop = True
            self.stopped_at = state.global_step
            if state.global_step not in self.results:
                self.results[state.global_step] = self.evaluate_fn(model)


def grpo(model: PreTrainedModel, tok: PreTrainedTokenizerBase, train: list[dict[str, str]],
         test: list[dict[str, str]], s: TrainSettings, out_dir: Path, cfg: RLPart,
         stop_flat: int = 0, loss_type: str = "dapo", evaluate_first: bool = True,
         callbacks: tuple[TrainerCallback, ...] = ()) -> dict[int, dict[str, float]]:
    """GRPO with the correctness reward, ``cfg.rl_iters`` steps of ``cfg.prompts_per_iter``
    prompts x ``cfg.num_generations`` samples (``cfg.num_iterations`` updates per batch),
    stopped early after ``stop_flat`` steps in a row without reward variance (0: never).

    ``loss_type`` is TRL's normalisation of the token losses ("grpo": per sequence, which favours
    short answers with positive advantage; "dapo": per token of the batch; "dr_grpo": by a
    constant). Returns {step: metrics}: greedy test metrics at step 0 (unless not
    ``evaluate_first``), every ``eval_every`` steps and at the end; from TRL's log of every step,
    ``reward_mean``, ``loss``, ``frac_reward_zero_std`` (the fraction of prompts whose samples all
    got the same reward: no gradient from them), ``len_mean_rollout`` and
    ``frac_truncated_rollout`` (sampled completions cut at ``max_completion_length``); at the
    last step run, ``stopped_early`` (1.0 if the flat-reward rule stopped GRPO, else 0.0).
    ``callbacks`` run before the evaluation's at each step's end.
    """
    args = GRPOConfig(
        **_common_args(s, out_dir, cfg.learning_rate), max_steps=cfg.rl_iters,
        per_device_train_batch_size=cfg.rl_batch, gradient_accumulation_steps=1,
        num_generations=cfg.num_generations, num_iterations=cfg.num_iterations,
        epsilon=cfg.epsilon, max_completion_length=s.max_completion_length,
        temperature=cfg.temperature, loss_type=loss_type, beta=cfg.beta, scale_rewards="group",
        logging_steps=1, log_completions=False,
    )
    callback = _EvalAndStop(cfg.eval_every, stop_flat, lambda m: evaluate(m, tok, test, s))
    results = {0: evaluate(model, tok, test, s)} if evaluate_first else {}
    trainer = GRPOTrainer(model=model, reward_funcs=correctness_reward(s.dataset), args=args,
                          train_dataset=Dataset.from_list(train), processing_class=tok,
                          callbacks=[*callbacks, callback])
    _train(trainer)
    results.update(callback.results)
    for h in trainer.state.log_history:  # TRL logs every step
        if "reward" in h:
            results.setdefault(h["step"], {}).update(
                reward_mean=h["reward"], loss=h.get("loss", math.nan),
                frac_reward_zero_std=h.get("frac_reward_zero_std", math.nan),
                len_mean_rollout=h.get("completions/mean_length", math.nan),
                frac_truncated_rollout=h.get("completions/clipped_ratio", math.nan))
    results[max(results)]["stopped_early"] = float(callback.stopped_at is not None)
    return dict(sorted(results.items()))

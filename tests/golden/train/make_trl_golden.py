#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Golden losses of TRL's DPOTrainer (PyPI trl 0.9.6, transformers 4.44.2, torch 1.13) on the tiny
Llama of tests/golden/model/llama, for tests/train/trl.cpp, which runs llm::train's trainer and
preference_batch (what `train --objective dpo` runs) with the same settings.

Settings (TRL's names): loss_type "sigmoid", beta 0.1, label_smoothing 0, the reference model a
frozen copy of the initial weights (TRL's create_reference_model; the tool's default reference
is --init's weights), dropout disabled, per_device_train_batch_size 2, no gradient accumulation,
the dataset in file order (the Trainer's RandomSampler replaced by a SequentialSampler, so step s
takes pairs 2s, 2s+1 mod 4, as the tool's batches), optim adamw_torch (torch.optim.AdamW) with
lr 5e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0, lr_scheduler_type "constant" with no
warmup, max_grad_norm 1.0 (clip_grad_norm_), 6 steps, CPU, fp32.

The data are token ids (trl_pairs.jsonl, written here): DPOTrainer.tokenize_row is replaced by one
that takes the ids as they are (no BOS / EOS added), and labels -100 on the prompt as TRL's own
tokenize_row does; TRL pads each batch to its longest row, the C++ side pads every row to T = 8
tokens after the real ones (causal: the logits of real tokens do not see padding).

Per step (0-based), from DPOTrainer.get_batch_loss_metrics at full precision (the Trainer's own
log rounds the loss to 4 digits): the loss (before the update), rewards/chosen, rewards/rejected,
rewards/margins, rewards/accuracies, logps/chosen, logps/rejected; and from the Trainer's log
the gradient norm before clipping.

The reward model: TRL's RewardTrainer on LlamaForSequenceClassification (num_labels 1,
pad_token_id 0) loaded from the same checkpoint (the decoder's weights; `score` drawn by
transformers' initialiser from torch.manual_seed(0), and written out as score_init), the same
pairs (input_ids_chosen = prompt + chosen, right-padded by the collator; the reward is read at
the last non-padding token, as transformers does with pad_token_id), the same optimizer,
clipping, schedule and order; loss -log sigmoid(r_chosen - r_rejected) averaged over the batch.
Per step: the loss, the mean chosen and rejected rewards, their mean margin and the accuracy
(TRL's compute_accuracy: the fraction with r_chosen > r_rejected), and the gradient norm.

Run: /work/venv-trl2/bin/python tests/golden/train/make_trl_golden.py
     (a venv with system site packages for torch 1.13 / numpy 1.24; docs/train.md lists the pins)
Writes tests/golden/train/trl_pairs.jsonl, trl_dpo.txt and trl_reward.txt (the format of
tests/support/golden.hpp).
"""
import json
import os
import tempfile
import warnings

import torch
import transformers
import trl
from datasets import Dataset
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from torch.utils.data import SequentialSampler

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "..", "model", "llama")
SETTINGS = dict(batch=2, seq=8, steps=6, lr=5e-3, beta=0.1, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, clip=1.0)
# (prompt, chosen, rejected) token ids below the tiny Llama's vocabulary of 64; 0 is the padding
PAIRS = [
    ([5, 17, 9], [22, 31, 40], [8, 8, 51, 3]),
    ([11], [12, 13, 14, 15], [60, 2]),
    ([33, 34], [35, 36], [44, 45, 46]),
    ([7, 19, 28, 3], [41, 42], [57, 9, 13]),
]
KEYS = ["rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen", "logps/rejected"]


class ids_dpo_trainer(trl.DPOTrainer):
    """DPOTrainer on token ids in file order, recording each step's loss and metrics unrounded."""

    record = []

    def tokenize_row(self, feature, model=None):
        out = {"prompt_input_ids": list(feature["prompt"]), "prompt_attention_mask": [1] * len(feature["prompt"])}
        for k in ("chosen", "rejected"):
            ids = list(feature["prompt"]) + list(feature[k])
            out[k + "_input_ids"] = ids
            out[k + "_attention_mask"] = [1] * len(ids)
            out[k + "_labels"] = [self.label_pad_token_id] * len(feature["prompt"]) + list(feature[k])
        return out

    def _get_train_sampler(self):
        return SequentialSampler(self.train_dataset)

    def get_batch_loss_metrics(self, model, batch, train_eval="train"):
        loss, metrics = super().get_batch_loss_metrics(model, batch, train_eval)
        if train_eval == "train":
            row = {"loss": loss.item()}
            row.update({k: float(metrics[k]) for k in KEYS})
            self.record.append(row)
        return loss, metrics


class norms(transformers.TrainerCallback):
    def __init__(self):
        self.grad_norm, self.lr = [], []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "grad_norm" in logs:
            self.grad_norm.append(float(logs["grad_norm"]))
            self.lr.append(float(logs["learning_rate"]))


class ids_reward_trainer(trl.RewardTrainer):
    """RewardTrainer in file order, recording each step's loss and reward statistics."""

    record = []

    def _get_train_sampler(self):
        return SequentialSampler(self.train_dataset)

    def compute_loss(self, model, inputs, return_outputs=False):
        loss, out = super().compute_loss(model, inputs, return_outputs=True)
        if model.training:
            c, r = out["rewards_chosen"].detach().reshape(-1).double(), out["rewards_rejected"].detach().reshape(-1).double()
            self.record.append({"loss": loss.item(), "rewards/chosen": c.mean().item(), "rewards/rejected": r.mean().item(),
                                "rewards/margins": (c - r).mean().item(), "rewards/accuracies": (c > r).double().mean().item()})
        return (loss, out) if return_outputs else loss


def emit_to(f, name, values):
    f.write("%s %d\n%s\n" % (name, len(values), " ".join(repr(float(v)) for v in values)))


def reward_golden(tok):
    s = SETTINGS
    torch.manual_seed(0)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(MODEL, torch_dtype=torch.float32, num_labels=1,
                                                                            pad_token_id=0)
    score_init = model.score.weight.detach().reshape(-1).tolist()
    cols = {"input_ids_chosen": [], "attention_mask_chosen": [], "input_ids_rejected": [], "attention_mask_rejected": []}
    for p, c, r in PAIRS:
        for k, resp in (("chosen", c), ("rejected", r)):
            cols["input_ids_" + k].append(p + resp)
            cols["attention_mask_" + k].append([1] * len(p + resp))
    cb = norms()
    with tempfile.TemporaryDirectory() as out:
        args = trl.RewardConfig(output_dir=out, per_device_train_batch_size=s["batch"], gradient_accumulation_steps=1,
                                learning_rate=s["lr"], adam_beta1=s["beta1"], adam_beta2=s["beta2"], adam_epsilon=s["eps"],
                                weight_decay=s["weight_decay"], max_grad_norm=s["clip"], lr_scheduler_type="constant",
                                warmup_steps=0, max_steps=s["steps"], logging_steps=1, save_strategy="no", report_to=[],
                                use_cpu=True, seed=0, data_seed=0, dataloader_num_workers=0, remove_unused_columns=False,
                                optim="adamw_torch", max_length=64)
        trainer = ids_reward_trainer(model=model, args=args, train_dataset=Dataset.from_dict(cols), tokenizer=tok, callbacks=[cb])
        trainer.train()
    rec = ids_reward_trainer.record
    assert len(rec) == s["steps"] and len(cb.grad_norm) == s["steps"], (len(rec), len(cb.grad_norm))
    with open(os.path.join(HERE, "trl_reward.txt"), "w") as f:
        f.write("# TRL %s RewardTrainer (LlamaForSequenceClassification) on tests/golden/model/llama, written by make_trl_golden.py\n"
                % trl.__version__)
        emit_to(f, "score_init", score_init)
        emit_to(f, "loss", [r["loss"] for r in rec])
        for k in KEYS[:4]:
            emit_to(f, k.replace("/", "_"), [r[k] for r in rec])
        emit_to(f, "grad_norm", cb.grad_norm)
    for i, r in enumerate(rec):
        print("reward", i, "loss %.9f margin %.6g acc %.2f grad_norm %.6g" % (r["loss"], r["rewards/margins"], r["rewards/accuracies"], cb.grad_norm[i]))


def main():
    s = SETTINGS
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    with open(os.path.join(HERE, "trl_pairs.jsonl"), "w") as f:
        for p, c, r in PAIRS:
            f.write(json.dumps({"prompt": p, "chosen": c, "rejected": r}) + "\n")
    model = transformers.AutoModelForCausalLM.from_pretrained(MODEL, torch_dtype=torch.float32)
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel({str(i): i for i in range(64)}, unk_token="0")),
                                               pad_token="0")
    data = Dataset.from_dict({"prompt": [p for p, _, _ in PAIRS], "chosen": [c for _, c, _ in PAIRS],
                              "rejected": [r for _, _, r in PAIRS]})
    cb = norms()
    with tempfile.TemporaryDirectory() as out:
        args = trl.DPOConfig(output_dir=out, per_device_train_batch_size=s["batch"], gradient_accumulation_steps=1,
                             learning_rate=s["lr"], adam_beta1=s["beta1"], adam_beta2=s["beta2"], adam_epsilon=s["eps"],
                             weight_decay=s["weight_decay"], max_grad_norm=s["clip"], lr_scheduler_type="constant",
                             warmup_steps=0, max_steps=s["steps"], logging_steps=1, save_strategy="no", report_to=[],
                             use_cpu=True, seed=0, data_seed=0, dataloader_num_workers=0, remove_unused_columns=False,
                             optim="adamw_torch", beta=s["beta"], loss_type="sigmoid", label_smoothing=0.0,
                             max_length=64, max_prompt_length=32, disable_dropout=True, precompute_ref_log_probs=False)
        trainer = ids_dpo_trainer(model=model, ref_model=None, args=args, train_dataset=data, tokenizer=tok, callbacks=[cb])
        trainer.train()
    rec = ids_dpo_trainer.record
    assert len(rec) == s["steps"] and len(cb.grad_norm) == s["steps"], (len(rec), len(cb.grad_norm))
    with open(os.path.join(HERE, "trl_dpo.txt"), "w") as f:
        f.write("# TRL %s DPOTrainer on tests/golden/model/llama, written by make_trl_golden.py (transformers %s, torch %s)\n"
                % (trl.__version__, transformers.__version__, torch.__version__))
        f.write("# settings: " + json.dumps(s) + "\n")

        def emit(name, values):
            f.write("%s %d\n%s\n" % (name, len(values), " ".join(repr(float(v)) for v in values)))

        emit("settings", [s["batch"], s["seq"], s["steps"], s["lr"], s["beta"], s["beta1"], s["beta2"], s["eps"], s["weight_decay"], s["clip"]])
        emit("loss", [r["loss"] for r in rec])
        for k in KEYS:
            emit(k.replace("/", "_"), [r[k] for r in rec])
        emit("grad_norm", cb.grad_norm)
        emit("lr", cb.lr)
    reward_golden(tok)
    for i, r in enumerate(rec):
        print(i, "loss %.9f margin %.6g acc %.2f grad_norm %.6g" % (r["loss"], r["rewards/margins"], r["rewards/accuracies"], cb.grad_norm[i]))


if __name__ == "__main__":
    main()

"""A tiny TRL ``SFTTrainer`` on CPU and the sequences its train dataloader collates; run as a script,
the fresh-process half of ``test_labels_data.py``.

``python sft_batches.py JOB.json OUT.json`` loads prepared datasets saved by another process,
shuffles them, optionally relabels them, builds a trainer for each packing set-up and writes the
sequences of its collated batches (and what ``mask_data`` says) to ``OUT.json``.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import torch
import transformers
from trl import SFTConfig, SFTTrainer

IGNORE = -100
# name -> SFTConfig settings; max_length is set per job.
SETUPS = {
    "unpacked": {"packing": False},
    "bfd": {"packing": True, "packing_strategy": "bfd"},
    "bfd_split": {"packing": True, "packing_strategy": "bfd_split"},
    "wrapped": {"packing": True, "packing_strategy": "wrapped"},
}


def tiny_model(tok: Any) -> transformers.PreTrainedModel:
    """A randomly initialised one-layer Qwen2 for ``tok``'s vocabulary."""
    torch.manual_seed(0)
    config = transformers.Qwen2Config(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        tie_word_embeddings=True,
    )
    return transformers.AutoModelForCausalLM.from_config(config)


def make_trainer(model, tok, dataset, out: Path, **config: Any) -> SFTTrainer:
    settings = {"max_length": 512, "per_device_train_batch_size": 2, **config}
    args = SFTConfig(
        output_dir=str(out),
        max_steps=1,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        **settings,
    )
    return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tok)


def collated_rows(trainer: SFTTrainer) -> list[tuple[list[int], list[int]]]:
    """(input_ids, labels) of every sequence in the trainer's train dataloader, padding removed."""
    sequences = []
    for batch in trainer.get_train_dataloader():
        if "position_ids" in batch:  # padding-free: one flat row, sequences start at position 0
            positions = batch["position_ids"][0]
            starts = [*(positions == 0).nonzero().flatten().tolist(), len(positions)]
            for start, end in zip(starts, starts[1:], strict=False):
                sequences.append((batch["input_ids"][0, start:end].tolist(), batch["labels"][0, start:end].tolist()))
            continue
        for ids, labels, attention in zip(batch["input_ids"], batch["labels"], batch["attention_mask"], strict=True):
            n = int(attention.sum())
            assert (labels[n:] == IGNORE).all()
            sequences.append((ids[:n].tolist(), labels[:n].tolist()))
    return sequences


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """For each saved dataset (relabelled here when the job says so) and each set-up: the rows' order,
    the collated sequences before and after ``mask_data`` with the job's policy, and what ``mask_data``
    with the default policy raises."""
    import datasets
    from model_families import family_tokenizer

    from teich import TeichError, mask_data, relabel

    tok = copy.deepcopy(family_tokenizer(job["family"]))
    model, policy, results = tiny_model(tok), job["policy"], {}
    for source, spec in job["sources"].items():
        dataset = datasets.load_from_disk(spec["path"]).shuffle(seed=job["seed"])
        if spec["relabel"]:
            dataset = relabel(dataset, **policy)
        results[source] = {"order": dataset[:]["input_ids"]}
        for setup, config in SETUPS.items():
            settings = {"max_length": job["max_length"][setup], **config}
            out = Path(job["workdir"]) / source / setup
            trainer = make_trainer(model, tok, dataset, out, **settings)
            before = collated_rows(trainer)
            try:
                mask_data(make_trainer(model, tok, dataset, out, **settings), audit=False)
                refusal = None
            except TeichError as error:
                refusal = str(error)
            after = collated_rows(mask_data(trainer, audit=False, **policy))
            results[source][setup] = {"before": before, "after": after, "default_policy_refusal": refusal}
    return results


if __name__ == "__main__":
    job_file, out_file = map(Path, sys.argv[1:])
    out_file.write_text(json.dumps(run_job(json.loads(job_file.read_text()))))

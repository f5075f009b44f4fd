"""RecBole 1.2.1 SASRec and BERT4Rec on an interaction file: the reference next-item runs.

sklattn's sequential-retrieval benchmark writes each user's events to a TSV file and
runs this script in a subprocess; this script trains RecBole's ``SASRec`` or
``BERT4Rec`` (``--model``) with RecBole's own data pipeline, leave-one-out split and
full-ranking evaluation, and prints ONE JSON line on stdout (RecBole's log and
everything else go to stderr)::

    {"library": "recbole", "library_version": "1.2.1", "torch": "2.13.0+cpu",
     "model": "SASRec", "hit@10": ..., "ndcg@10": ..., "hit@50": ..., "ndcg@50": ...,
     "valid": {"hit@10": ..., ...}, "best_epoch": ..., "epochs_run": ...,
     "fit_seconds": ..., "train_seconds": ..., "valid_seconds": ...,
     "train_sequences_per_s": ..., "n_users": ..., "n_items": ...,
     "n_train_sequences": ..., "config": {...}, ...}

Environment
-----------
RecBole runs on PyTorch, so it has its own virtual environment (no TensorFlow, no
sklattn). RecBole 1.2.1 (the latest release) declares ``ray<=2.6.3``, which only its
``recbole.quick_start`` module imports (for hyper-parameter tuning, not used here), so
RecBole is installed without its declared dependencies and those are installed
separately, all but ray. The CPU wheel of torch 2.13.0 is installed first and by its
exact version, so that nothing pulls a CUDA build::

    python3.11 -m venv /opt/recbole-env
    /opt/recbole-env/bin/pip install torch==2.13.0
    /opt/recbole-env/bin/pip install --no-deps recbole==1.2.1
    /opt/recbole-env/bin/pip install "numpy<2" "scipy<1.14" "pandas<2.3" tqdm \\
        colorlog==4.7.2 colorama==0.4.4 scikit-learn pyyaml tensorboard thop tabulate \\
        plotly texttable psutil

This resolved to torch 2.13.0+cpu, numpy 1.26.4, scipy 1.13.1, pandas 2.2.3,
scikit-learn 1.9.1, tensorboard 2.21.0. ``numpy<2`` is needed: RecBole 1.2.1 reads
``np.float_`` (gone in numpy 2); pandas 3 and the newest scipy require numpy 2, so
they are held back too (the bounds above are the tested set). ``Trainer`` needs
``tensorboard`` (``torch.utils.tensorboard``) even though nothing is logged there.

The benchmark finds the interpreter through ``$RECBOLE_PYTHON`` (default
``/opt/recbole-env/bin/python``). By hand::

    /opt/recbole-env/bin/python benchmarks/reference/recbole_sequential.py \\
        --inter events.tsv --model SASRec --max-len 50 --embedding-dim 64 \\
        --n-blocks 2 --n-heads 2 --dropout 0.2 --loss CE --epochs 200 \\
        --stopping-step 10 --batch-size 256 --learning-rate 0.001 --seed 0 --device cpu

Input (``--inter``)
-------------------
A tab-separated file with a header naming the columns ``user_id``, ``item_id`` and
``timestamp`` (others are ignored). The ids are opaque tokens; ``timestamp`` is the
event's rank within its user (0, 1, 2, ...), so the order of a user's events is
unambiguous. The file is copied, with RecBole's typed header
(``user_id:token item_id:token timestamp:float``), into a temporary directory that
also holds RecBole's data, checkpoint and TensorBoard folders (the script runs with
that directory as its working directory and removes it at the end).

Split and evaluation (RecBole's own)
------------------------------------
``eval_args: {split: {LS: valid_and_test}, order: TO, mode: full, group_by: user}``:

* RecBole first turns every user's time-ordered events ``e_1 .. e_n`` into one row per
  event after the first (its "data augmentation" for sequential models): the row for
  ``e_t`` holds the previous ``min(t - 1, --max-len)`` items (oldest first,
  right-padded) and ``e_t`` as the target. Leave-one-out then splits each user's rows:
  the row with target ``e_n`` is the test row, the row with target ``e_{n-1}`` the
  validation row, and the rows with targets ``e_2 .. e_{n-2}`` are the training
  sequences. So this is leave-last-out: the last event is the test item (its input is
  every earlier event, the validation item included), the second last the validation
  item, and training uses every prefix of the remaining events ``e_1 .. e_{n-2}``
  (``n - 3`` training sequences per user; ``e_1`` is never a target).
* ``mode: full``: each validation/test row ranks all items (the padding id excluded).
  For sequential models RecBole does NOT remove the user's already seen items from
  the ranking. ``Hit@k`` is the share of users whose held-out item is in the top
  ``k``; ``NDCG@k`` is ``1 / log2(rank + 2)`` (rank from 0) for a hit, else 0,
  averaged over users (one relevant item per user). ``topk: [10, 50]``.
* Early stopping: validation after every epoch; RecBole keeps the parameters of the
  epoch with the best validation ``NDCG@10`` (a tie moves it to the later epoch) and
  stops after ``--stopping-step + 1`` consecutive epochs without reaching it (or after
  ``--epochs``). The test metrics are those of the kept parameters. RecBole saves
  them to a checkpoint file and reloads it with ``torch.load``, which torch >= 2.6
  refuses by default (the checkpoint holds RecBole's config object); the best state
  is therefore kept in memory instead (``_save_checkpoint`` overridden), which is the
  same parameters without the file round trip.

Models (RecBole 1.2.1)
----------------------
Both: item embedding (``--embedding-dim`` = RecBole's ``hidden_size``) plus a learned
absolute position embedding (position 0 = the oldest item of the right-padded list),
LayerNorm and dropout, then ``--n-blocks`` post-norm transformer layers
(``n_heads``, ``inner_size = 4 * hidden_size`` = RecBole's 256 at the default 64,
``hidden_act: gelu``, ``layer_norm_eps: 1e-12``, ``hidden_dropout_prob`` and
``attn_dropout_prob`` both ``--dropout``), weights initialised N(0, 0.02); the output
layer shares the item embedding. Adam, no weight decay.

* ``SASRec``: causal attention; the output at the last real position scores every item
  by a dot product with its embedding. ``--loss CE``: softmax cross-entropy over all
  items (the padding id included in the normaliser) for the row's target only -- one
  target per training sequence, with all prefixes as separate sequences, rather than
  the paper's one loss term per position. ``--loss BPR``: one uniformly sampled
  negative per sequence (``train_neg_sample_args: {distribution: uniform,
  sample_num: 1}``).
* ``BERT4Rec``: bidirectional attention, an output head (dense + GELU + LayerNorm) and a
  per-item output bias. Training (RecBole's ``mask_itemseq`` transform, per batch):
  with probability ``ft_ratio = 0.5`` (RecBole's default) the batch only masks the last
  item of each training sequence; otherwise every item is replaced by the mask token
  with probability ``--mask-prob`` (``mask_ratio``), at most ``int(mask_ratio *
  max_len)`` masks kept per sequence (the latest), and sequences that draw no mask add
  nothing to the loss. The row's own target item is not used in training. ``CE``:
  softmax over all items at the masked positions; ``BPR``: the transform's own sampled
  negative (no RecBole negative sampling is configured). Prediction appends the mask
  token after the last item and reads its output; to keep ``max_len`` positions
  RecBole drops the first column, so the oldest item of the input is lost even when
  the history is shorter than ``--max-len``.

Timing
------
``fit_seconds``: wall clock of ``Trainer.fit`` (training and the per-epoch validation,
in-memory checkpoint copies included). ``train_seconds``: the sum over epochs of
``Trainer._train_epoch`` alone (no validation), timed by a subclass of ``Trainer``;
``valid_seconds`` the sum of the validation passes. ``train_sequences_per_s`` =
``n_train_sequences * epochs_run / train_seconds``. ``data_seconds``: building
RecBole's dataset, augmentation and dataloaders. ``test_seconds``: the final test
evaluation. Threads: ``--threads`` (default PyTorch's, one per core; on a
machine where another process holds a core, one thread trains several times faster
than two, whose OpenMP team then waits on the busy core). ``best_epoch`` and
``epochs_run`` count from 1.

Cost on MovieLens-100k (943 users, 1682 items, 97,171 training sequences of up to 50
items, the defaults above): an epoch of SASRec takes about 100 s on 2 free CPU cores
(about 930 training sequences/s), BERT4Rec about 115 s (about 850/s). Early stopping
ended SASRec after 17 epochs on the CPU (best: epoch 6) and BERT4Rec after 38 on a GPU
(best: 27), so about 30 and 75 minutes on 2 cores; on one H100 the runs took 3.5
(SASRec, 16 epochs) and 7 minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import logging
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

DATASET = "events"
METRICS = ("hit@10", "ndcg@10", "hit@50", "ndcg@50")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inter", required=True,
                        help="TSV with columns user_id, item_id, timestamp (rank per user)")
    parser.add_argument("--model", choices=("SASRec", "BERT4Rec"), default="SASRec")
    parser.add_argument("--max-len", type=int, default=50, help="MAX_ITEM_LIST_LENGTH")
    parser.add_argument("--embedding-dim", type=int, default=64, help="hidden_size")
    parser.add_argument("--n-blocks", type=int, default=2, help="n_layers")
    parser.add_argument("--n-heads", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.2,
                        help="hidden_dropout_prob and attn_dropout_prob")
    parser.add_argument("--loss", choices=("CE", "BPR"), default="CE")
    parser.add_argument("--epochs", type=int, default=200, help="maximum number of epochs")
    parser.add_argument("--stopping-step", type=int, default=10,
                        help="early-stopping patience on validation NDCG@10")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--mask-prob", type=float, default=0.2, help="BERT4Rec mask_ratio")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: PyTorch's, one per core)")
    return parser.parse_args(argv)


def write_atomic_inter(source: Path, target: Path) -> int:
    """Copy ``source`` to RecBole's atomic ``.inter`` format; returns the row count."""
    columns = ("user_id", "item_id", "timestamp")
    with open(source, newline="") as f_in:
        reader = csv.reader(f_in, delimiter="\t")
        header = next(reader)
        missing = [c for c in columns if c not in header]
        if missing:
            raise ValueError(f"{source} lacks the columns {missing} (header: {header})")
        index = [header.index(c) for c in columns]
        target.parent.mkdir(parents=True, exist_ok=True)
        n_rows = 0
        with open(target, "w", newline="") as f_out:
            f_out.write("user_id:token\titem_id:token\ttimestamp:float\n")
            for row in reader:
                if row:
                    f_out.write("\t".join(row[i] for i in index) + "\n")
                    n_rows += 1
    return n_rows


def recbole_config(args: argparse.Namespace, root: Path) -> dict:
    """RecBole's parameters for this run (everything else stays at RecBole's defaults)."""
    config = {
        "data_path": str(root / "data"),
        "checkpoint_dir": str(root / "saved"),
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp",
        "MAX_ITEM_LIST_LENGTH": args.max_len,
        "hidden_size": args.embedding_dim,
        "inner_size": 4 * args.embedding_dim,
        "n_layers": args.n_blocks,
        "n_heads": args.n_heads,
        "hidden_dropout_prob": args.dropout,
        "attn_dropout_prob": args.dropout,
        "loss_type": args.loss,
        # CE needs no sampled negatives (RecBole refuses them); SASRec's BPR takes one
        # uniform negative per sequence; BERT4Rec's transform samples its own.
        "train_neg_sample_args": (
            {"distribution": "uniform", "sample_num": 1, "alpha": 1.0, "dynamic": False,
             "candidate_num": 0}
            if args.loss == "BPR" and args.model == "SASRec" else None
        ),
        "epochs": args.epochs,
        "stopping_step": args.stopping_step,
        "eval_step": 1,
        "train_batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "learner": "adam",
        "weight_decay": 0.0,
        "eval_args": {
            "split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full",
            "group_by": "user",
        },
        "metrics": ["Hit", "NDCG"],
        "topk": [10, 50],
        "valid_metric": "NDCG@10",
        "metric_decimal_place": 6,
        "seed": args.seed,
        "reproducibility": True,
        "use_gpu": args.device == "cuda",
        "gpu_id": "0" if args.device == "cuda" else "",
        "show_progress": False,
        "log_wandb": False,
        "save_dataset": False,
        "save_dataloaders": False,
        "worker": 0,
    }
    if args.model == "BERT4Rec":
        config["mask_ratio"] = args.mask_prob
    return config


def timed_trainer_class(Trainer):
    """RecBole's Trainer, timing training and validation apart, best state in memory."""

    class TimedTrainer(Trainer):
        def __init__(self, config, model):
            super().__init__(config, model)
            self.train_epoch_seconds: list[float] = []
            self.valid_epoch_seconds: list[float] = []
            self.best_state = None
            self.best_epoch = None

        def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
            start = time.perf_counter()
            loss = super()._train_epoch(train_data, epoch_idx, loss_func, show_progress)
            self.train_epoch_seconds.append(time.perf_counter() - start)
            return loss

        def _valid_epoch(self, valid_data, show_progress=False):
            start = time.perf_counter()
            result = super()._valid_epoch(valid_data, show_progress)
            self.valid_epoch_seconds.append(time.perf_counter() - start)
            return result

        def _save_checkpoint(self, epoch, verbose=True, **kwargs):
            # Called whenever validation reaches a new best; a copy in memory instead of
            # RecBole's checkpoint file, which torch >= 2.6 will not load by default.
            self.best_state = {
                key: value.detach().clone() for key, value in self.model.state_dict().items()
            }
            self.best_epoch = epoch

    return TimedTrainer


def run(args: argparse.Namespace) -> dict:
    import recbole
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import BERT4Rec, SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    # Importing recbole.model.sequential_recommender imports its SINE module, which
    # switches on autograd anomaly detection for the whole process (a debugging mode
    # that records a Python traceback for every operation; here it made SASRec's
    # backward pass about 5 times slower). No model of this script needs it.
    torch.autograd.set_detect_anomaly(False)
    if args.threads:
        torch.set_num_threads(args.threads)
    model_class = {"SASRec": SASRec, "BERT4Rec": BERT4Rec}[args.model]
    inter = Path(args.inter).resolve()
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="recbole-") as tmp:
        root = Path(tmp)
        n_events = write_atomic_inter(inter, root / "data" / DATASET / f"{DATASET}.inter")
        # RecBole's Trainer opens a TensorBoard writer under ./log_tensorboard.
        os.chdir(root)
        try:
            config = Config(
                model=args.model, dataset=DATASET, config_dict=recbole_config(args, root)
            )
            init_seed(config["seed"], config["reproducibility"])
            start = time.perf_counter()
            dataset = create_dataset(config)
            train_data, valid_data, test_data = data_preparation(config, dataset)
            data_seconds = time.perf_counter() - start

            init_seed(config["seed"], config["reproducibility"])
            model = model_class(config, train_data._dataset).to(config["device"])
            trainer = timed_trainer_class(Trainer)(config, model)

            start = time.perf_counter()
            best_valid_score, best_valid = trainer.fit(
                train_data, valid_data, verbose=True, saved=True, show_progress=False
            )
            fit_seconds = time.perf_counter() - start

            model.load_state_dict(trainer.best_state)
            start = time.perf_counter()
            test = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
            test_seconds = time.perf_counter() - start
            trainer.tensorboard.close()
        finally:
            os.chdir(cwd)

    n_train = len(train_data.dataset)
    epochs_run = len(trainer.train_epoch_seconds)
    train_seconds = sum(trainer.train_epoch_seconds)
    n_params = sum(p.numel() for p in model.parameters())
    used = recbole_config(args, Path("."))
    config_out = {
        key: used[key]
        for key in (
            "MAX_ITEM_LIST_LENGTH", "hidden_size", "inner_size", "n_layers", "n_heads",
            "hidden_dropout_prob", "attn_dropout_prob", "loss_type", "epochs",
            "stopping_step", "train_batch_size", "learning_rate", "eval_args", "topk",
            "valid_metric", "seed",
        )
    }
    config_out.update(
        hidden_act=config["hidden_act"], layer_norm_eps=config["layer_norm_eps"],
        initializer_range=config["initializer_range"],
        train_neg_sample_args=config["train_neg_sample_args"],
        eval_batch_size=config["eval_batch_size"],
    )
    if args.model == "BERT4Rec":
        config_out.update(mask_ratio=config["mask_ratio"], ft_ratio=config["ft_ratio"])

    return {
        "library": "recbole",
        "library_version": recbole.__version__,
        "torch": torch.__version__,
        "model": args.model,
        **{name: float(test[name]) for name in METRICS},
        "valid": {name: float(best_valid[name]) for name in METRICS},
        "best_valid_ndcg@10": float(best_valid_score),
        "best_epoch": trainer.best_epoch + 1,
        "epochs_run": epochs_run,
        "fit_seconds": fit_seconds,
        "train_seconds": train_seconds,
        "valid_seconds": sum(trainer.valid_epoch_seconds),
        "train_sequences_per_s": n_train * epochs_run / train_seconds,
        "data_seconds": data_seconds,
        "test_seconds": test_seconds,
        "n_events": n_events,
        "n_users": dataset.user_num - 1,  # RecBole's id 0 is padding
        "n_items": dataset.item_num - 1,
        "n_train_sequences": n_train,
        "n_valid": len(valid_data.dataset),
        "n_test": len(test_data.dataset),
        "n_parameters": n_params,
        "device": str(config["device"]),
        "torch_threads": torch.get_num_threads(),
        "config": config_out,
    }


def main(argv=None) -> None:
    args = parse_args(argv)
    # A terminated run still removes its temporary directory (SystemExit unwinds).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    # RecBole logs through the root logger; its lines go to stderr, stdout keeps the JSON.
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        result = run(args)
    print(json.dumps(result), file=stdout, flush=True)


if __name__ == "__main__":
    main()

"""Train a small classifier on the points prepare.py wrote: a plain PyTorch script that carbon-pipe runs as it is.

What `carbon-pipe run` asks of it (the contract in carbon-pipe's docs/own-code.md, "Your own training script"):
- on SIGTERM it finishes the current step, checkpoints to $CARBON_PIPE_CHECKPOINT_DIR and exits;
- started again, it resumes from that checkpoint, to the same model bytes as a run in one go (on a CPU);
- it writes its model to $CARBON_PIPE_OUT and its accuracy and losses to $CARBON_PIPE_METRICS.
Without carbon-pipe the same script runs on its own: the variables default to folders under ./out.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import sys
from pathlib import Path

stop_requests: list[int] = []  # SIGTERM is taken before the slow imports, so one that comes early is not lost
signal.signal(signal.SIGTERM, lambda signum, frame: stop_requests.append(signum))

import torch  # noqa: E402
from torch import nn  # noqa: E402


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/points.pt"))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def save(path: Path, obj) -> None:
    """Through memory and a rename: a kill never leaves half a file, and the bytes hold no temporary name."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(buffer.getvalue())
    partial.replace(path)


def evaluate(model: nn.Module, data: dict) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        logits = model(data["test_x"])
        loss = nn.functional.cross_entropy(logits, data["test_y"]).item()
        accuracy = 100.0 * (logits.argmax(1) == data["test_y"]).float().mean().item()
    model.train()
    return loss, accuracy


def report(path: Path, args: argparse.Namespace, state: dict, samples: int) -> None:
    """The figures carbon-pipe puts in metrics/<run>.json; what is left out there is null, never guessed."""
    last = state["epochs"][-1] if state["epochs"] else {}
    figures = {
        "final_accuracy": last.get("test_accuracy"),
        "final_loss": last.get("train_loss"),
        "test_loss": last.get("test_loss"),
        "train_samples": samples,
        "epochs": state["epochs"],
        "batch_size": args.batch_size,
        "precision": "fp32",
        "device": "cpu",
        "dataset": str(args.data),
        "model_class": f"MLP(hidden={args.hidden})",
        "extra": {"resumed_at_step": state["resumed_at_step"]},
    }
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(figures, indent=2))
    partial.replace(path)


def main() -> int:
    args = arguments()
    out = Path(os.environ.get("CARBON_PIPE_OUT", "out"))
    checkpoint = Path(os.environ.get("CARBON_PIPE_CHECKPOINT_DIR", out / "checkpoint")) / "checkpoint.pt"
    metrics = Path(os.environ.get("CARBON_PIPE_METRICS", out / "metrics.json"))
    torch.manual_seed(args.seed)
    data = torch.load(args.data, weights_only=True)
    samples, features = data["train_x"].shape
    classes = int(data["train_y"].max()) + 1
    model = nn.Sequential(nn.Linear(features, args.hidden), nn.ReLU(), nn.Linear(args.hidden, classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    order = torch.Generator().manual_seed(args.seed)  # the data order: shuffled each epoch
    state = {
        "epoch": 0, "step": 0, "steps": 0, "order": order.get_state(), "epoch_loss": 0.0, "epochs": [],
        "resumed_at_step": [],
    }  # how far training is: with the model and optimizer, what a checkpoint holds

    if checkpoint.is_file():  # started again after a stop: carry on exactly where it was
        saved = torch.load(checkpoint, weights_only=True)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state = saved["state"]
        state["resumed_at_step"].append(state["steps"])

    def stop_here() -> dict:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "state": state}

    while state["epoch"] < args.epochs:
        order.set_state(state["order"])  # the epoch's shuffle, again if it was cut short
        batches = torch.randperm(samples, generator=order).split(args.batch_size)
        for batch in batches[state["step"]:]:
            loss = nn.functional.cross_entropy(model(data["train_x"][batch]), data["train_y"][batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            state["epoch_loss"] += loss.item() * len(batch)
            state["step"] += 1
            state["steps"] += 1
            if stop_requests:  # carbon-pipe's pause (or a preemption): checkpoint, and exit to be started again
                save(checkpoint, stop_here())
                print(f"stopped at epoch {state['epoch'] + 1}, step {state['step']}: checkpoint saved", flush=True)
                return 128 + signal.SIGTERM
        test_loss, accuracy = evaluate(model, data)
        state["epochs"].append(
            {"epoch": state["epoch"] + 1, "train_loss": state["epoch_loss"] / samples, "test_loss": test_loss,
             "test_accuracy": accuracy}
        )
        state.update(epoch=state["epoch"] + 1, step=0, order=order.get_state(), epoch_loss=0.0)
        save(checkpoint, stop_here())
        report(metrics, args, state, samples)
        if stop_requests and state["epoch"] < args.epochs:
            return 128 + signal.SIGTERM
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # trained: a SIGTERM now would only cost a relaunch
    save(out / "model.pt", model.state_dict())
    report(metrics, args, state, samples)
    print(f"trained {args.epochs} epochs: test accuracy {state['epochs'][-1]['test_accuracy']:.2f} %", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A small CNN for the 8x8 digits, and the pipeline step that trains it with Fermion.

The network takes Fermion's feature matrix (the 64 pixel columns p0..p63, standardised by
the model's own preprocessing) and reshapes it to one 8x8 channel: two 3x3 convolutions, a
linear head giving one logit per digit. `fit` is a custom training function for
`fermion.train`; `train_step` is the `python` step of fermion.yaml that calls it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fermion.pipelines.types import StepContext, StepOutput
from fermion.training.trainer import train

PIXELS = [f"p{i}" for i in range(64)]


class DigitsCNN(nn.Module):
    def __init__(self, n_classes: int = 10, channels: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, kernel_size=3, padding=1),  # 16 x 8 x 8
            nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, kernel_size=3, padding=1),  # 32 x 8 x 8
            nn.ReLU(),
            nn.MaxPool2d(2),  # 32 x 4 x 4
        )
        self.head = nn.Linear(2 * channels * 16, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        images = x.reshape(-1, 1, 8, 8)
        return self.head(self.features(images).flatten(1))


def fit(data: Any, run: Any) -> nn.Module:
    """Adam, mini-batches of 64, a fixed number of epochs; the weights of the epoch with the
    best validation accuracy are kept. Params (`data.params`): epochs, lr, channels."""
    if data.feature_names != PIXELS:
        raise ValueError(f"expected the 64 pixel columns p0..p63, got {data.feature_names[:5]}...")
    epochs = int(data.params.get("epochs", 12))
    lr = float(data.params.get("lr", 3e-3))
    torch.manual_seed(data.seed)
    net = DigitsCNN(data.n_classes, int(data.params.get("channels", 16)))
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    X, y = torch.from_numpy(data.X_train), torch.from_numpy(data.y_train).long()
    X_valid, y_valid = torch.from_numpy(data.X_valid), torch.from_numpy(data.y_valid).long()
    generator = torch.Generator().manual_seed(data.seed)
    best, best_state = -1.0, None
    for epoch in range(epochs):
        net.train()
        for rows in torch.randperm(len(X), generator=generator).split(64):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(net(X[rows]), y[rows])
            loss.backward()
            optimizer.step()
        net.eval()
        with torch.no_grad():
            accuracy = (net(X_valid).argmax(1) == y_valid).float().mean().item()
        run.log_metrics({"train_loss": loss.item(), "valid_accuracy": accuracy}, step=epoch)
        if accuracy > best:
            best, best_state = accuracy, {k: v.clone() for k, v in net.state_dict().items()}
    if best_state is not None:
        net.load_state_dict(best_state)
    return net.eval()


def train_step(
    context: StepContext, name: str = "digits", seed: int = 0, threads: int = 1, **params: Any
) -> StepOutput:
    """The `python` step: train the CNN on the step's dataset (`dataset: split`), register
    it as the next version of `name` (flavor torch_export), and hand it on as the step's
    model, so evaluate, optimize and gate steps can name this step. `threads`: PyTorch's
    threads while training; one is fastest for so small a network (more threads only
    contend, badly so on a busy machine). Other args are `fit`'s params."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        result = train(
            context.workspace,
            context.ref("dataset", "dataset"),
            "label",
            fit,
            params,
            name=name,
            seed=seed,
        )
    finally:
        torch.set_num_threads(before)
    version = result.model
    assert version is not None  # registered: train() registers unless register=False
    metrics = dict(version.metrics) | {f"valid_{k}": v for k, v in result.valid_metrics.items()}
    return StepOutput(
        refs={"model": version.ref},
        hashes={"model": version.content_hash},
        metrics=metrics,
        summary=f"{version.ref} (CNN, {version.flavor}, test accuracy "
        f"{version.metrics.get('accuracy', float('nan')):.4f})",
    )

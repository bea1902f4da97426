"""A user's own model and data, as a security engineer would bring them: a small residual
CNN (batch norm, max-pool, ReLU, dropout) on 3-channel 8×8 images — the digits, tinted
with a colour per class band so that colour carries some signal — saved in every format
vtrust reads. Not a zoo architecture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn


class ResidualNet(nn.Module):
    """conv-BN-ReLU, a residual conv block, max-pool, dropout, linear head."""

    def __init__(self, channels: int = 3, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(channels, 12, 3, padding=1), nn.BatchNorm2d(12), nn.ReLU()
        )
        self.block = nn.Sequential(
            nn.Conv2d(12, 12, 3, padding=1),
            nn.BatchNorm2d(12),
            nn.ReLU(),
            nn.Conv2d(12, 12, 3, padding=1),
        )
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout(0.1)
        self.fc = nn.Linear(12 * 4 * 4, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        h = torch.relu(h + self.block(h))
        return self.fc(self.drop(self.pool(h).flatten(1)))


def rgb_digits() -> tuple[np.ndarray, np.ndarray]:
    """The bundled digits as uint8 (N, 8, 8, 3) images, tinted by class band."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    grey = bunch.images / 16.0
    tint = np.array([[1.0, 0.6, 0.6], [0.6, 1.0, 0.6], [0.6, 0.6, 1.0]])[bunch.target % 3]
    rgb = grey[..., None] * tint[:, None, None, :]
    return (rgb * 255).round().astype(np.uint8), bunch.target.astype(np.int64)


def build(root: Path) -> dict[str, Path]:
    """Train the model on the data's victim split and write every file into ``root``."""
    from vtrust.data import load_dataset
    from vtrust.models import TrainConfig, fit

    x, y = rgb_digits()
    data = root / "rgb.npz"
    np.savez(data, x=x, y=y)
    splits = load_dataset(f"npz:{data}", seed=0)
    torch.manual_seed(0)
    model = ResidualNet()
    fit(model, splits.victim, TrainConfig(epochs=8, batch_size=64, lr=3e-3, seed=0), desc="byom")
    model.eval()
    example = torch.zeros(2, 3, 8, 8)
    paths = {"data": data, "module": model}
    paths["torchscript"] = root / "model.ts"
    torch.jit.save(torch.jit.script(model), str(paths["torchscript"]))
    paths["export"] = root / "model.pt2"
    program = torch.export.export(
        model, (example,), dynamic_shapes={"x": {0: torch.export.Dim("batch")}}
    )
    torch.export.save(program, str(paths["export"]))
    paths["onnx"] = root / "model.onnx"
    torch.onnx.export(
        model,
        (example,),
        str(paths["onnx"]),
        dynamo=False,
        input_names=["x"],
        output_names=["logits"],
        dynamic_axes={"x": {0: "n"}},
    )
    paths["state_dict"] = root / "model.pt"
    torch.save(model.state_dict(), paths["state_dict"])
    paths["pickled"] = root / "whole.pt"
    torch.save(model, paths["pickled"])
    return paths

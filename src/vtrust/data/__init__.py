"""Datasets: embedded digits and synthetic data, MNIST-format IDX folders, natural images."""

from vtrust.data.datasets import SPLIT_FRACTIONS, Dataset, Splits, load_arrays, load_dataset
from vtrust.data.idx import load_idx_dir, parse_idx, read_idx
from vtrust.data.natural import natural_image_pool

__all__ = [
    "SPLIT_FRACTIONS",
    "Dataset",
    "Splits",
    "load_arrays",
    "load_dataset",
    "load_idx_dir",
    "natural_image_pool",
    "parse_idx",
    "read_idx",
]

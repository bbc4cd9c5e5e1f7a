"""minicnn.data: datasets, a DataLoader and batch transforms over NumPy arrays.

Batches are NCHW float32 arrays with int64 labels; the training loop wraps
them in Tensors. Nothing downloads: real data is embedded (MNIST digits,
nuclei, UCR/UEA time series), regenerated (MNIST-1D) or read from Debian's
Fashion-MNIST package.

    >>> from minicnn.data import DataLoader, load_digits
    >>> loader = DataLoader(load_digits("train"), batch_size=64, shuffle=True, seed=0)
    >>> x, y = next(iter(loader))
    >>> x.shape, x.dtype, y.dtype
    ((64, 1, 28, 28), dtype('float32'), dtype('int64'))
"""
from minicnn.data import transforms
from minicnn.data.dataset import ArrayDataset, Dataset, Subset, random_split
from minicnn.data.datasets import (FASHION_MNIST_CLASSES, digits_arrays, digits_mean_std,
                                   fashion_mnist_arrays, load_digits, load_fashion_mnist,
                                   load_nuclei, nuclei_arrays, relabel_sequential)
from minicnn.data.idx import parse_idx, read_idx
from minicnn.data.loader import DataLoader, default_collate
from minicnn.data.mnist1d import load_mnist1d, mnist1d_arrays
from minicnn.data.tsfile import TSFile, parse_ts, read_ts
from minicnn.data.ucr import UCR_DATASETS, load_ucr, pad_series, stack_series, ucr_arrays, ucr_classes
from minicnn.data.synthetic import InstanceSet, digits_on_canvas, nuclei_tiles
from minicnn.data.segmentation import (DIGIT_CLASSES, NUCLEI_CLASSES, SegmentationSet, digit_segmentation,
                                       nuclei_segmentation, three_class_mask)

__all__ = [
    "ArrayDataset", "DataLoader", "Dataset", "FASHION_MNIST_CLASSES", "InstanceSet", "Subset",
    "default_collate", "digits_arrays", "digits_mean_std", "digits_on_canvas", "fashion_mnist_arrays",
    "load_digits", "load_fashion_mnist", "load_nuclei", "nuclei_arrays", "nuclei_tiles", "parse_idx",
    "random_split", "read_idx", "relabel_sequential", "transforms",
    "TSFile", "UCR_DATASETS", "load_mnist1d", "load_ucr", "mnist1d_arrays", "pad_series", "parse_ts", "read_ts",
    "stack_series", "ucr_arrays", "ucr_classes",
    "DIGIT_CLASSES", "NUCLEI_CLASSES", "SegmentationSet", "digit_segmentation", "nuclei_segmentation",
    "three_class_mask",
]

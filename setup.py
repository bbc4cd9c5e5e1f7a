"""minicnn: a from-scratch numerical CNN engine (Numba CPU kernels, CUDA C kernels, a CPU emulator of them)."""
import os

from setuptools import find_packages, setup


def _packages():
    """minicnn's packages, and kernels/* installed as minicnn.kernels.*."""
    pkgs = find_packages(include=["minicnn", "minicnn.*"])
    kernel_dirs = {"minicnn.kernels": "kernels"}
    for sub in sorted(os.listdir("kernels")):
        if os.path.isfile(os.path.join("kernels", sub, "__init__.py")):
            kernel_dirs[f"minicnn.kernels.{sub}"] = f"kernels/{sub}"
    return pkgs + list(kernel_dirs), kernel_dirs


PACKAGES, PACKAGE_DIR = _packages()

setup(
    name="minicnn",
    version="0.1.0",
    description="A from-scratch CNN engine: hand-written forward/backward kernels on CPU (Numba) and GPU (CUDA C)",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=PACKAGES,
    # kernels/ lives at the top level of the repository but installs as minicnn.kernels
    package_dir=PACKAGE_DIR,
    package_data={
        "minicnn.kernels.cuda": ["*.cu"],
        "minicnn.kernels.emulator": ["*.h"],
        "minicnn.data": ["embedded/*.npz", "embedded/*.txt", "embedded/ucr/*.ts.gz", "embedded/ucr/*.txt"],
    },
    install_requires=["numpy>=1.24", "numba>=0.59", "tqdm", "matplotlib"],
    extras_require={
        "gpu": ["cupy-cuda13x"],
        # torch==2.13.0 is the CPU build on these machines; a looser range pulls a multi-GB CUDA build
        # mnist1d: the oracle of our offline MNIST-1D regeneration (its make_dataset, never its downloader)
        # pycocotools: the test oracle of our COCO-style detection mAP (the implementation stays ours)
        # nvidia-cuda-nvdisasm: the SASS of the NVRTC compile check's instruction report (no GPU needed)
        "test": ["pytest", "hypothesis", "torch==2.13.0", "nvidia-cuda-nvrtc", "nvidia-cuda-nvdisasm", "cupy-cuda13x",
                 "mnist1d", "pycocotools"],
        # data-parallel training on MPI: mpi4py and MPICH's runtime as a wheel (mpiexec on PATH);
        # Debian's MPICH or Open MPI work as well
        "dist": ["mpi4py>=4", "mpich"],
        "bench": ["torch==2.13.0"],
        # torchvision's NMS / ROI align as the peers of ours: PyPI's torchvision does not import
        # beside the CPU torch 2.13 here; this pair does (a CUDA build of ~5.5 GB, run on the CPU):
        # install it in a separate venv (see the README), not with the test extras
        "bench-vision": ["torch==2.14.1", "torchvision==0.29.1"],
        # the documentation site: mkdocs build --strict -f docs/mkdocs.yml
        "docs": ["mkdocs>=1.6.1,<2", "mkdocs-material>=9.8,<10", "mkdocstrings[python]>=1.0,<2",
                 "mkdocstrings-python>=2.0,<3", "pymdown-extensions>=13,<14"],
    },
    entry_points={"console_scripts": ["minicnn=minicnn.__main__:main"]},
)

"""Packaging for sphsal. The CUDA sources in csrc/ ship inside the package as sphsal/csrc/*.cu."""

import os
import re
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


def read_version():
    with open(os.path.join(HERE, "sphsal", "_version.py"), encoding="utf-8") as f:
        return re.search(r'__version__ = "([^"]+)"', f.read()).group(1)


class BuildPyWithKernels(build_py):
    """Copy csrc/*.cu and *.cuh into the built package so a non-editable install finds them."""

    def run(self):
        super().run()
        src = os.path.join(HERE, "csrc")
        dst = os.path.join(self.build_lib, "sphsal", "csrc")
        if os.path.isdir(src):
            os.makedirs(dst, exist_ok=True)
            for name in sorted(os.listdir(src)):
                if name.endswith((".cu", ".cuh")):
                    shutil.copy2(os.path.join(src, name), os.path.join(dst, name))


with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
    long_description = f.read()

setup(
    name="sphsal",
    version=read_version(),
    description="Saliency prediction on 360-degree video with ambisonic audio, built on spherical operators",
    long_description=long_description,
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["sphsal", "sphsal.*"]),
    cmdclass={"build_py": BuildPyWithKernels},
    install_requires=[
        "torch>=2.4",
        "numpy>=1.24",
        "numba>=0.59",
        "healpy>=1.16",
        "opencv-python-headless>=4.8,<5",  # OpenCV 5 no longer bundles the Haar face cascades
        "librosa>=0.10",
        "matplotlib>=3.7",
        "av>=11",
        "soundfile>=0.12",
        "tqdm>=4.60",
        "scipy>=1.10",
    ],
    extras_require={
        "cuda": ["cupy-cuda12x>=13"],
        "tensorboard": ["tensorboard>=2.14"],
        "dev": ["pytest>=7.4", "pytest-timeout>=2.2", "ruff>=0.5"],
    },
    entry_points={"console_scripts": ["sphsal=sphsal.cli:main"]},
    license="MIT",
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
)

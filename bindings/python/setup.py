"""Builds turbopump's Python package: the pure-Python loader and the _turbopump extension,
compiled together with the C client library's sources (loader/client.c and what it needs),
so `pip install bindings/python` from a checkout needs no separately installed library.
Where nvcc is found (on PATH, or under $CUDA_HOME) the GPU plugin libturbopump_cuda.so is
built into the package too, for Loader(device="cuda"); TP_CUDA=0 leaves it out."""
import os
import re
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
GEN = os.path.join(HERE, "build", "generated")


def project_version():
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        return re.search(r"project\(turbopump VERSION (\d+)\.(\d+)\.(\d+)", f.read()).groups()


def generate_version_header():
    major, minor, patch = project_version()
    with open(os.path.join(ROOT, "include", "turbopump", "version.h.in")) as f:
        text = f.read()
    for key, value in (("PROJECT_VERSION_MAJOR", major), ("PROJECT_VERSION_MINOR", minor),
                       ("PROJECT_VERSION_PATCH", patch),
                       ("PROJECT_VERSION", "%s.%s.%s" % (major, minor, patch))):
        text = text.replace("@%s@" % key, value)
    os.makedirs(os.path.join(GEN, "turbopump"), exist_ok=True)
    path = os.path.join(GEN, "turbopump", "version.h")
    if not os.path.exists(path) or open(path).read() != text:
        with open(path, "w") as f:
            f.write(text)
    return "%s.%s.%s" % (major, minor, patch)


VERSION = generate_version_header()
C_SOURCES = ["loader/client.c", "loader/protocol.c", "shm/ring.c", "shm/gpu.c",
             "common/normalize.c", "common/dtype.c", "common/error.c",
             "common/version.c", "common/fsutil.c", "common/checksum.c",
             "common/fault.c"]

def find_nvcc():
    if os.environ.get("TP_CUDA", "auto") == "0":
        return None
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or "/usr/local/cuda"
    return shutil.which("nvcc") or shutil.which("nvcc", path=os.path.join(home, "bin"))


class BuildWithPlugin(build_ext):
    """Also builds the GPU plugin next to the extension; without nvcc, or if it fails,
    the package works as before and device="cuda" says the plugin is missing."""

    def run(self):
        super().run()
        nvcc = find_nvcc()
        if not nvcc:
            return
        out = os.path.join(self.build_lib, "turbopump", "libturbopump_cuda.so")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        cmd = [nvcc, "-O2", "-shared", "-cudart", "static", "-Xcompiler",
               "-fPIC,-fvisibility=hidden", "-I", os.path.join(ROOT, "shm"),
               "-gencode", "arch=compute_75,code=compute_75",
               "-gencode", "arch=compute_80,code=sm_80",
               "-gencode", "arch=compute_90,code=sm_90",
               os.path.join(ROOT, "shm", "cuda", "plugin.cu"), "-o", out]
        try:
            subprocess.run(cmd, check=True)
        except (OSError, subprocess.CalledProcessError) as e:
            sys.stderr.write("turbopump: the GPU plugin was not built (%s)\n" % e)


setup(
    name="turbopump",
    cmdclass={"build_ext": BuildWithPlugin},
    version=VERSION,
    description="Python loader for the turbopump data-loading daemon",
    packages=["turbopump"],
    python_requires=">=3.9",
    install_requires=["numpy"],
    ext_modules=[Extension(
        "turbopump._turbopump",
        # absolute paths: objects then stay under the build directory
        sources=["src/_turbopump.c"] + [os.path.join(ROOT, s) for s in C_SOURCES],
        include_dirs=[GEN, os.path.join(ROOT, "include"), os.path.join(ROOT, "common"),
                      os.path.join(ROOT, "shm"), os.path.join(ROOT, "loader")],
        define_macros=[("_GNU_SOURCE", None)],
        extra_compile_args=["-std=c11", "-fvisibility=hidden"],
    )],
)

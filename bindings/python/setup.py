"""Builds turbopump's Python package, self-contained: the pure-Python loader, the
_turbopump extension linked against the C client library (libturbopump's static archive),
the `turbopump` executable the Loader starts as its private daemon and that the console
entry point runs, and, where nvcc is found, the GPU plugin libturbopump_cuda.so.

The C parts are built by the project's own CMake build (one list of sources, one set of
flags), so `pip install bindings/python` from a checkout needs nothing built by hand.
Environment:
  TP_CUDA=0        leave the GPU plugin out (built when nvcc is on PATH or in
                   $CUDA_HOME/bin, default /usr/local/cuda/bin)
  TP_BUILD_DIR=D   use (and update) the configured, unsanitised CMake build in D instead of
                   configuring one under build/
  TP_BUILD_JOBS=N  parallel compile jobs (default: the CPUs)

A wheel (`pip wheel bindings/python`) is repaired with auditwheel when it is importable (it
is in pyproject.toml's build requirements): the shared libraries the executable needs
beyond the manylinux set are copied into the wheel and the wheel gets the manylinux tag
its glibc symbols allow. Without auditwheel the wheel keeps the plain linux tag, which is
what it then honestly is."""
import glob
import os
import re
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1 keeps it in the wheel package
    try:
        from wheel.bdist_wheel import bdist_wheel
    except ImportError:  # then pip cannot make wheels here, and nothing is to repair
        bdist_wheel = None

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


def project_version():
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        m = re.search(r"project\(turbopump VERSION (\d+\.\d+\.\d+)", f.read())
    return m.group(1)


def log(msg):
    sys.stderr.write("turbopump: %s\n" % msg)


def find_nvcc():
    """nvcc on PATH, else under $CUDA_HOME, $CUDA_PATH or /usr/local/cuda (where the
    toolkit installs, often not on PATH)."""
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or "/usr/local/cuda"
    return shutil.which("nvcc") or shutil.which("nvcc", path=os.path.join(home, "bin"))


def cmake_build_dir(build_temp):
    """Configures the CMake build the package is made from (or takes TP_BUILD_DIR's) and
    builds the executable, the client archive and the plugin in it."""
    if not shutil.which("cmake"):
        raise SystemExit("turbopump: building the package needs cmake and the C libraries "
                         "it uses; on Debian 12, as root: scripts/setup.sh")
    given = os.environ.get("TP_BUILD_DIR")
    out = os.path.abspath(given) if given else os.path.join(os.path.abspath(build_temp),
                                                            "cmake")
    targets = ["turbopump", "libturbopump_static", "tp_storage", "tp_common"]
    if not given:
        nvcc = find_nvcc() if os.environ.get("TP_CUDA", "auto") != "0" else None
        cmd = ["cmake", "-S", ROOT, "-B", out, "-DCMAKE_BUILD_TYPE=Release",
               "-DTP_BUILD_TESTS=OFF", "-DTP_WITH_CUDA=" + ("auto" if nvcc else "OFF")]
        if nvcc:
            cmd.append("-DCMAKE_CUDA_COMPILER=" + nvcc)
        if shutil.which("ninja"):
            cmd += ["-G", "Ninja"]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    cache = open(os.path.join(out, "CMakeCache.txt")).read()
    if re.search(r"^TP_SANITIZE:STRING=.+$", cache, re.M):
        raise SystemExit("turbopump: TP_BUILD_DIR=%s is a sanitizer build; the package "
                         "needs a plain one" % out)
    plugin = re.search(r"^TP_HAVE_CUDA:INTERNAL=ON$", cache, re.M) is not None
    if plugin and os.environ.get("TP_CUDA", "auto") != "0":
        targets.append("turbopump_cuda")
    jobs = os.environ.get("TP_BUILD_JOBS") or str(os.cpu_count() or 1)
    subprocess.run(["cmake", "--build", out, "-j", jobs, "--target"] + targets, check=True)
    return out, "turbopump_cuda" in targets


class BuildWithCore(build_ext):
    """Builds the C parts with CMake first, links the extension against the client archive
    and copies the executable (and plugin) into the package."""

    def run(self):
        self.cmake_dir, plugin = cmake_build_dir(self.build_temp)
        for ext in self.extensions:
            ext.include_dirs.append(os.path.join(self.cmake_dir, "include"))
            # the client first; the dataset writer (storage, and what it needs of common)
            for archive in (os.path.join(self.cmake_dir, "loader", "libturbopump.a"),
                            os.path.join(self.cmake_dir, "storage", "libtp_storage.a"),
                            os.path.join(self.cmake_dir, "common", "libtp_common.a")):
                ext.extra_objects.append(archive)
                ext.depends.append(archive)
        super().run()
        pkg = os.path.join(self.build_lib, "turbopump")
        os.makedirs(os.path.join(pkg, "bin"), exist_ok=True)
        exe = os.path.join(pkg, "bin", "turbopump")
        shutil.copy2(os.path.join(self.cmake_dir, "tools", "turbopump"), exe)
        os.chmod(exe, 0o755)
        if plugin:
            shutil.copy2(os.path.join(self.cmake_dir, "shm", "libturbopump_cuda.so"), pkg)


class RepairedWheel(bdist_wheel or object):
    """A wheel whose tag says what it needs: auditwheel grafts the non-manylinux shared
    libraries in and picks the manylinux tag."""

    def run(self):
        before = set(glob.glob(os.path.join(self.dist_dir, "*.whl")))
        super().run()
        try:
            import auditwheel  # noqa: F401
        except ImportError:
            log("auditwheel is not importable: the wheel keeps its plain linux tag")
            return
        for wheel in sorted(set(glob.glob(os.path.join(self.dist_dir, "*.whl"))) - before):
            fixed = os.path.join(self.dist_dir, "repaired")
            subprocess.run([sys.executable, "-m", "auditwheel", "repair", "-w", fixed, wheel],
                           check=True)
            [made] = glob.glob(os.path.join(fixed, "*.whl"))
            os.remove(wheel)
            shutil.move(made, self.dist_dir)
            shutil.rmtree(fixed)
            log("wheel repaired: %s" % os.path.basename(made))


setup(
    name="turbopump",
    cmdclass=dict({"build_ext": BuildWithCore},
                  **({"bdist_wheel": RepairedWheel} if bdist_wheel else {})),
    version=project_version(),
    description="Data loading for deep-learning training: the turbopump daemon, its "
                "client and a PyTorch/NumPy loader",
    packages=["turbopump"],
    python_requires=">=3.9",
    install_requires=["numpy"],
    entry_points={"console_scripts": ["turbopump = turbopump.__main__:main"]},
    ext_modules=[Extension(
        "turbopump._turbopump",
        sources=["src/_turbopump.c", "src/writer.c", "src/tokens_writer.c"],
        include_dirs=[os.path.join(ROOT, "include"), os.path.join(ROOT, "shm")],
        define_macros=[("_GNU_SOURCE", None)],
        extra_compile_args=["-std=c11", "-fvisibility=hidden"],
        libraries=["dl", "pthread", "lmdb", "jansson", "xxhash", "curl", "inih", "expat"],
        # the client's exported functions stay inside the extension
        extra_link_args=["-Wl,--exclude-libs,ALL"],
    )],
)

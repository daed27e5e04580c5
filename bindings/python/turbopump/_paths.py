"""Where the files bundled with the package are: the `turbopump` executable (the daemon a
Loader starts on its own, and the CLI) under bin/."""
import os

_HERE = os.path.dirname(os.path.abspath(__file__))


def executable():
    """The bundled `turbopump` executable, or None when the package has none."""
    path = os.path.join(_HERE, "bin", "turbopump")
    return path if os.access(path, os.X_OK) else None


def daemon_executable():
    """What a Loader starts as its private daemon: $TURBOPUMP_BIN when set (a build of
    your own), else the bundled executable, else None (the client then looks on PATH)."""
    return os.environ.get("TURBOPUMP_BIN") or executable()

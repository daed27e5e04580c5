"""`python -m turbopump ...` and the `turbopump` console command: the command-line tool
(pack, serve, stat, ...) bundled inside this package, run in place of this process."""
import os
import sys

from ._paths import executable


def main():
    exe = executable()
    if exe is None:
        sys.stderr.write("turbopump: this package has no bundled executable (it was built "
                         "without one); set TURBOPUMP_BIN or install from a full build\n")
        return 127
    os.execv(exe, ["turbopump"] + sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())

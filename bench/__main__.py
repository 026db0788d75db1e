"""`make bench`: runs every benchmark and writes tables and JSON to bench/results/."""

import importlib
import pkgutil
import sys

import bench


def main():
    names = [m.name for m in pkgutil.iter_modules(bench.__path__)
             if m.name not in ("common", "__main__")]
    wanted = sys.argv[1:] or names
    for name in wanted:
        module = importlib.import_module(f"bench.{name}")
        module.main()


if __name__ == "__main__":
    main()

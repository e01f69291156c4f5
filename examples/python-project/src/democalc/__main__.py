"""python -m democalc sum|product NUMBER..."""

import sys

from democalc import __version__, product, total


def main(argv):
    if len(argv) < 2 or argv[0] not in ("sum", "product"):
        print("usage: python -m democalc sum|product NUMBER...", file=sys.stderr)
        return 2
    fn = total if argv[0] == "sum" else product
    print(f"democalc {__version__}: {argv[0]} = {fn(argv[1:])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

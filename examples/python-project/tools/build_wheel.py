"""Build a pure-Python wheel (PEP 427) of src/democalc with the standard library only.

    python3 tools/build_wheel.py OUTDIR

What pip or build would make for this package: the modules, and a .dist-info with
METADATA, WHEEL and RECORD (each file's sha256 and size).
"""

import base64
import hashlib
import sys
import zipfile
from pathlib import Path

NAME, VERSION = "democalc", "0.1.0"
TAG = "py3-none-any"


def record_line(path, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def main(out):
    root = Path(__file__).resolve().parent.parent
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    wheel = out / f"{NAME}-{VERSION}-{TAG}.whl"
    info = f"{NAME}-{VERSION}.dist-info"
    files = {}
    for path in sorted((root / "src" / NAME).rglob("*.py")):
        files[f"{NAME}/{path.relative_to(root / 'src' / NAME).as_posix()}"] = path.read_bytes()
    files[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {VERSION}\n"
        "Summary: add and multiply numbers given as text\n"
    ).encode()
    files[f"{info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: build_wheel.py\nRoot-Is-Purelib: true\nTag: {TAG}\n"
    ).encode()
    records = [record_line(p, d) for p, d in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(records) + "\n").encode()
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():
            zf.writestr(zipfile.ZipInfo(path, (1980, 1, 1, 0, 0, 0)), data)
    print(f"built {wheel}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "dist")

"""Rebuild the UCR/UEA time-series files shipped in ``minicnn/data/embedded/ucr/``.

The files come from the BSD-3 licensed aeon wheel, which carries them in the archive's ``.ts``
format with the published train/test splits; nothing is downloaded, the wheel must be on disk::

    python tools/make_ucr_data.py --aeon /tmp/wheels/aeon-1.6.0-py3-none-any.whl

Each ``aeon/datasets/data/<Name>/<Name>_{TRAIN,TEST}.ts`` is stored byte for byte, gzip-compressed
(level 9, no file name, mtime 0, so a rebuild gives identical bytes), as ``ucr/<Name>_<SPLIT>.ts.gz``;
``ucr/SOURCES.txt`` records the wheel's and every file's SHA-256, the licence and the citations.
aeon itself is never imported: ``minicnn.data.tsfile`` parses the files.
"""
import argparse
import gzip
import hashlib
import io
import os
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "..", "minicnn", "data", "embedded", "ucr")

# name: (archive, what it is)
DATASETS = {
    "GunPoint": ("UCR", "univariate, 2 classes, length 150, 50 train / 150 test"),
    "ArrowHead": ("UCR", "univariate, 3 classes, length 251, 36 train / 175 test"),
    "ItalyPowerDemand": ("UCR", "univariate, 2 classes, length 24, 67 train / 1029 test"),
    "OSULeaf": ("UCR", "univariate, 6 classes, length 427, 200 train / 242 test"),
    "BasicMotions": ("UEA", "multivariate, 6 dimensions, 4 classes, length 100, 40 train / 40 test"),
    "JapaneseVowels": ("UEA", "multivariate, 12 dimensions, 9 classes, lengths 7-29, 270 train / 370 test"),
}


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def gzip_bytes(data):
    """Deterministic gzip: level 9, no name, mtime 0."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=buf, mtime=0) as f:
        f.write(data)
    return buf.getvalue()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aeon", required=True, help="path to aeon-1.6.0-py3-none-any.whl")
    parser.add_argument("--out", default=OUT_DIR)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with open(args.aeon, "rb") as f:
        wheel_sha = sha256(f.read())
    entries = []
    with zipfile.ZipFile(args.aeon) as zf:
        licence = zf.read("aeon-1.6.0.dist-info/licenses/LICENSE").decode()
        for name, (archive, what) in DATASETS.items():
            lines = [f"{name}  ({archive} archive; {what})"]
            for split in ("TRAIN", "TEST"):
                member = f"aeon/datasets/data/{name}/{name}_{split}.ts"
                raw = zf.read(member)
                packed = gzip_bytes(raw)
                out = f"{name}_{split}.ts.gz"
                with open(os.path.join(args.out, out), "wb") as f:
                    f.write(packed)
                lines.append(f"  {out}  ({len(packed)} bytes, sha256 {sha256(packed)})")
                lines.append(f"    from {member} ({len(raw)} bytes, sha256 {sha256(raw)})")
            entries.append("\n".join(lines))
    text = SOURCES_TEMPLATE.format(wheel=os.path.basename(args.aeon), wheel_sha=wheel_sha,
                                   entries="\n\n".join(entries), licence=licence.strip())
    with open(os.path.join(args.out, "SOURCES.txt"), "w") as f:
        f.write(text)
    print(f"wrote {len(DATASETS) * 2} files and SOURCES.txt to {os.path.abspath(args.out)}")


SOURCES_TEMPLATE = """\
UCR/UEA time-series classification sets of minicnn.data.ucr: origin, licence, citations
=======================================================================================
Regenerate with: python tools/make_ucr_data.py --aeon <wheel>

Source  : the wheel {wheel} (sha256 {wheel_sha}),
          files aeon/datasets/data/<Name>/<Name>_TRAIN.ts and _TEST.ts: the archive's own .ts files
          with its published train/test split, stored here unchanged, gzip-compressed.
Format  : the UCR/UEA .ts text format, read by minicnn/data/tsfile.py (aeon is not imported).

{entries}

Citations (the archives the series come from)
---------------------------------------------
UCR (univariate): H. A. Dau, A. Bagnall, K. Kamgar, C.-C. M. Yeh, Y. Zhu, S. Gharghabi,
  C. A. Ratanamahatana, E. Keogh, "The UCR time series archive", IEEE/CAA Journal of
  Automatica Sinica 6(6), 1293-1305, 2019. https://www.cs.ucr.edu/~eamonn/time_series_data_2018/
UEA (multivariate): A. Bagnall, H. A. Dau, J. Lines, M. Flynn, J. Large, A. Bostrom, P. Southam,
  E. Keogh, "The UEA multivariate time series classification archive, 2018", arXiv:1811.00075.
  https://www.timeseriesclassification.com
The archive asks users to cite it and the original donors of each set (named in each file's
leading '#' comment lines, e.g. JapaneseVowels: Kudo, Toyama & Shimbo 1999, UCI).

Licence of the wheel that ships the files (aeon, BSD 3-Clause)
--------------------------------------------------------------
{licence}
"""

if __name__ == "__main__":
    main()

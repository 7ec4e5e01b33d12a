"""Write digits.csv from scikit-learn's bundled digits (1,797 8x8 images, no download).

python make_data.py        # digits.csv beside this file: p0..p63 (0-16) and label
"""

from __future__ import annotations

from pathlib import Path

from sklearn.datasets import load_digits


def main() -> None:
    digits = load_digits(as_frame=True)
    frame = digits.data.astype(int)
    frame.columns = [f"p{i}" for i in range(frame.shape[1])]
    frame["label"] = digits.target.astype(int)
    path = Path(__file__).with_name("digits.csv")
    frame.to_csv(path, index=False)
    print(f"wrote {path.name}: {len(frame):,} rows, {frame.shape[1]} columns")


if __name__ == "__main__":
    main()

"""Export trained models and count FLOPs.

    python export.py [--ckpt CKPT] [--out DIR] [--quantize fbgemm|x86|qnnpack ...] [--data DIR ...]
    python export.py ship [--ckpt CKPT] [--engine x86] [--notes NOTES.md] [--overwrite]
    python export.py flops [--models u2netp dlmv] [--sizes 512 1024] [--mode train|eval]
"""

import sys

from skinseg.export.cli import main

if __name__ == "__main__":
    sys.exit(main())

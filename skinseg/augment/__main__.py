"""`python -m skinseg.augment SRC_DIR DST_DIR` (or `--gallery IMAGE MASK OUT.png`): see `skinseg.augment.materialise`."""

from skinseg.augment.materialise import main

if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m toymodel``: the ``toymodel`` command (:mod:`toymodel.cli`)."""

from toymodel.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m equiv`` is the ``equiv`` command (also what ``torchrun -m equiv`` runs)."""

from equiv.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

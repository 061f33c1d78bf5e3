"""equiv.calculators — see ../shared/DESIGN.md for what belongs here."""

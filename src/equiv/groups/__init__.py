"""equiv.groups — see ../shared/DESIGN.md for what belongs here."""

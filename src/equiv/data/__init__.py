"""equiv.data — see ../shared/DESIGN.md for what belongs here."""

"""equiv.models — see ../shared/DESIGN.md for what belongs here."""

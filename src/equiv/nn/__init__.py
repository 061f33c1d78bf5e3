"""equiv.nn — see ../shared/DESIGN.md for what belongs here."""

"""equiv.tp: tensor products behind one interface."""

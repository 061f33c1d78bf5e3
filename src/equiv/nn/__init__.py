"""equiv.nn — layers: Linear over irreps, Gate, norms, radial bases, frame averaging, ... (see DESIGN.md)."""

# --- frame averaging (owner: N-body engineer) ---
from equiv.nn.frame_averaging import FrameAveraging, from_frames, pca_frames, to_frames

__all__ = [
    # frame averaging
    "FrameAveraging", "from_frames", "pca_frames", "to_frames",
]

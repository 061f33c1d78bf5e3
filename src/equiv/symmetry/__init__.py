"""equiv.symmetry: equivariance errors and assertions, orbit evaluation, soft-equivariance regularisers."""

"""equiv.so3: SO(3)/O(3) mathematics (irreps, spherical harmonics, Wigner D, Clebsch–Gordan, Gaunt, sphere grids, rotations)."""

"""equiv.so3: SO(3)/O(3) mathematics in e3nn's real basis, with no degree cap.

- `Irrep`, `Irreps`, `MulIr`: irreps of O(3) and direct sums (e3nn's string syntax, ``mul_ir`` layout).
- `spherical_harmonics`, `SphericalHarmonics`: real spherical harmonics (e3nn basis, order and signs), any degree.
- `wigner_D`, `wigner_D_from_matrix`: Wigner D matrices (e3nn's Y-X-Y Euler angles), batched;
  `wigner_D_upto`: all degrees from rotation matrices by a smooth recursion (no angles).
- `clebsch_gordan`: real-basis Clebsch–Gordan coefficients (= e3nn's ``wigner_3j``), any degree, cached.
- `gaunt`: integrals of three real spherical harmonics, exact, any degree.
- `sphere_grid`: Gauss–Legendre × uniform quadrature on the sphere, exact to a band limit.
- `ToS2Grid`, `FromS2Grid`, `s2_grid`: signals on the sphere, coefficients ↔ values on e3nn's equiangular grid;
  `SphericalTensor`: a signal's irreps, with peaks, deltas, samples, evaluation and peak finding;
  `SO3Grid`, `so3_irreps`: signals on the rotation group (Wigner coefficients ↔ Euler-angle grid).
- `angles_to_matrix`, `matrix_to_angles`, `random_rotation`, ...: rotations; quaternions and axis-angle
  conversions, composition, inverses and Haar sampling with e3nn's names (`rand_matrix`, `matrix_to_quaternion`, ...).
- `CartesianTensor`: Cartesian tensors with index symmetries (``"ij=ji"``) as irreps, both ways;
  `ReducedTensorProducts`: the same for products of irreps features.
- `direct_sum`, `orthonormalize`, `complete_basis`: block diagonals and Gram–Schmidt bases (e3nn.math's).

See docs/so3.md for the conventions and the measured agreement with e3nn.

>>> from equiv.so3 import Irreps, spherical_harmonics
>>> Irreps("16x0e + 8x1o").dim
40
"""

from ._angular import (
    Legendre,
    SphericalHarmonicsAlphaBeta,
    irfft,
    rfft,
    spherical_harmonics_alpha,
    spherical_harmonics_s2_grid,
)
from ._cartesian import CartesianTensor, ReducedTensorProducts
from ._linalg import complete_basis, direct_sum, orthonormalize
from ._clebsch_gordan import CG_CONVENTIONS, clebsch_gordan, convention_sign, wigner_3j_complex
from ._gaunt import gaunt
from ._grid import SphereGrid, sphere_grid
from . import _parametrizations
from ._parametrizations import (
    angles_to_axis_angle,
    angles_to_quaternion,
    axis_angle_to_angles,
    axis_angle_to_matrix,
    axis_angle_to_quaternion,
    compose_angles,
    compose_axis_angle,
    compose_quaternion,
    identity_angles,
    identity_quaternion,
    inverse_angles,
    inverse_quaternion,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    quaternion_to_angles,
    quaternion_to_axis_angle,
    rand_angles,
    rand_axis_angle,
    rand_matrix,
    rand_quaternion,
    spherical_harmonics_alpha_beta,
    wigner_3j,
)
from ._s2grid import FromS2Grid, ToS2Grid, s2_grid
from ._so3grid import SO3Grid, flat_wigner, so3_irreps
from ._spherical_tensor import SphericalTensor
from ._irreps import Irrep, Irreps, MulIr
from ._rotation import (
    angles_to_matrix,
    angles_to_xyz,
    matrix_to_angles,
    matrix_x,
    matrix_y,
    matrix_z,
    quaternion_to_matrix,
    random_rotation,
    xyz_to_angles,
)
from ._spherical_harmonics import SphericalHarmonics, spherical_harmonics
from ._wigner import change_basis_complex_to_real, so3_generators, wigner_D, wigner_D_from_matrix, wigner_D_upto

__all__ = [
    "Irrep",
    "Irreps",
    "MulIr",
    "spherical_harmonics",
    "SphericalHarmonics",
    "wigner_D",
    "wigner_D_from_matrix",
    "wigner_D_upto",
    "change_basis_complex_to_real",
    "so3_generators",
    "angles_to_matrix",
    "matrix_to_angles",
    "angles_to_xyz",
    "xyz_to_angles",
    "matrix_x",
    "matrix_y",
    "matrix_z",
    "quaternion_to_matrix",
    "random_rotation",
    *_parametrizations.__all__,  # quaternions, axis-angle, composition, Haar sampling (e3nn's names)
    "clebsch_gordan",
    "convention_sign",
    "CG_CONVENTIONS",
    "wigner_3j_complex",
    "gaunt",
    "SphereGrid",
    "sphere_grid",
    "ToS2Grid",
    "FromS2Grid",
    "s2_grid",
    "SphericalTensor",
    "SO3Grid",
    "Legendre",
    "SphericalHarmonicsAlphaBeta",
    "spherical_harmonics_alpha",
    "spherical_harmonics_s2_grid",
    "rfft",
    "irfft",
    "so3_irreps",
    "flat_wigner",
    "CartesianTensor",
    "ReducedTensorProducts",
    "direct_sum",
    "orthonormalize",
    "complete_basis",
]

"""The generated ERP test pattern (sphsal/testimages.py) shows each face's colour on its cube face."""

import pytest
import torch

from sphsal.projections import FACE_NAMES, equirect_to_cubemap
from sphsal.testimages import FACE_COLOURS, erp_test_pattern


def test_shape_dtype_range():
    x = erp_test_pattern(32, 64)
    assert x.shape == (3, 32, 64) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1 and x.std() > 0.1


def test_face_discs_land_on_their_cube_faces():
    faces = equirect_to_cubemap(erp_test_pattern(128, 256)[None], 32)[0]
    for k, name in enumerate(FACE_NAMES):
        # Column 11 is 15.6 deg from the face centre: beside the letter, inside the 20 deg disc.
        colour = faces[k, :, 16, 11]
        assert torch.allclose(colour, torch.tensor(FACE_COLOURS[name]), atol=0.05), name
        # The letter is drawn in the centre in a contrasting ink.
        ink = faces[k, :, 13:19, 13:19].reshape(3, -1)
        assert (ink - torch.tensor(FACE_COLOURS[name])[:, None]).abs().max() > 0.4, name


def test_bad_size():
    with pytest.raises(ValueError, match="even w"):
        erp_test_pattern(16, 31)

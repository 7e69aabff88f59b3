"""make_chairs: reproducible renders whose ground truth matches the images."""

import numpy as np
import pytest

from sklearn_vhp.datasets import make_chairs


def test_make_chairs_layout_range_and_reproducibility():
    a = make_chairs(3, azimuths=5, elevations=[20, 30], image_size=32, random_state=0)
    b = make_chairs(3, azimuths=5, elevations=[20, 30], image_size=32, random_state=0)
    assert a.data.shape == (30, 32 * 32)
    assert np.array_equal(a.data, b.data)
    assert np.array_equal(a.shape_params, b.shape_params)
    assert a.data.min() >= 0.0 and a.data.max() <= 1.0
    # Chair-major, then elevation, then azimuth.
    assert a.chair.tolist() == [0] * 10 + [1] * 10 + [2] * 10
    assert a.elevation[:10].tolist() == [20.0] * 5 + [30.0] * 5
    assert np.allclose(a.azimuth[:5], [0, 72, 144, 216, 288])
    assert np.shares_memory(a.images, a.data)
    X, y = make_chairs(
        3, azimuths=5, elevations=[20, 30], image_size=32, random_state=0, return_X_y=True
    )
    assert np.array_equal(X, a.data) and np.array_equal(y, a.chair)
    c = make_chairs(3, azimuths=5, elevations=[20, 30], image_size=32, random_state=1)
    assert not np.array_equal(a.data, c.data)


def test_paper_views_by_default():
    chairs = make_chairs(1, random_state=0)
    assert chairs.data.shape == (62, 64 * 64)
    assert np.allclose(chairs.azimuths, 360.0 * np.arange(31) / 31)
    assert chairs.elevations.tolist() == [20.0, 30.0]
    # A chair fills part of the frame, never the border.
    img = chairs.images
    assert (img.reshape(62, -1) > 0).mean(axis=1).min() > 0.03
    border = np.concatenate([img[:, 0], img[:, -1], img[:, :, 0], img[:, :, -1]], axis=1)
    assert border.max() == 0.0


def test_render_at_minus_azimuth_is_the_mirror_image():
    # Chairs are left/right symmetric and the light lies in the camera's
    # vertical plane, so azimuth -a renders the mirror image of azimuth a.
    # With the angles passed as exact negatives it is bit-exact; between
    # the grid's views k and 31 - k (whose azimuths are negatives only up
    # to rounding) the images agree to 1e-12.
    az = np.array([0.0, 25.0, -25.0, 100.0, -100.0, 160.0, -160.0])
    chairs = make_chairs(4, azimuths=az, elevations=[20, 30], random_state=3)
    img = chairs.images.reshape(4, 2, len(az), 64, 64)
    for i, j in [(1, 2), (3, 4), (5, 6)]:
        np.testing.assert_array_equal(img[:, :, i], img[:, :, j, :, ::-1])
    np.testing.assert_array_equal(img[:, :, 0], img[:, :, 0, :, ::-1])
    # ...and they are not mirror-symmetric themselves (the test can fail).
    assert np.abs(img[:, :, 1] - img[:, :, 1, :, ::-1]).max() > 0.5

    grid = make_chairs(2, random_state=4).images.reshape(2, 2, 31, 64, 64)
    k = np.arange(1, 31)
    np.testing.assert_allclose(grid[:, :, k], grid[:, :, 31 - k, :, ::-1], rtol=0, atol=1e-12)


def test_views_and_chairs_differ():
    chairs = make_chairs(6, azimuths=8, elevations=[30], random_state=0)
    img = chairs.data.reshape(6, 8, -1)
    # Every pair of chairs differs at the same view...
    for a in range(6):
        for b in range(a + 1, 6):
            assert np.abs(img[a] - img[b]).mean() > 0.01
    # ...and so does every pair of views of one chair (except none).
    d = np.abs(img[:, :, None] - img[:, None]).mean(axis=-1)
    assert d[:, ~np.eye(8, dtype=bool)].min() > 0.005
    # The shapes differ too, and the categories take their values.
    p = chairs.shape_params
    assert len(np.unique(p[:, 0])) == 6
    names = chairs.shape_param_names
    assert set(np.unique(p[:, names.index("back_style")])) <= {0, 1, 2}


def test_shape_params_round_trip():
    chairs = make_chairs(2, azimuths=[0.0, 180.0], elevations=[20], random_state=0)
    again = make_chairs(shape_params=chairs.shape_params, azimuths=[0.0, 180.0], elevations=[20])
    np.testing.assert_array_equal(chairs.data, again.data)


def test_occlusion_hides_the_seat_behind_a_tall_backrest():
    # One ray per pixel, so every chair pixel is exactly one face's shade.
    # The seat's top (normal +y) has the same shade from the front and from
    # the back at the same elevation; seen from behind, a tall full-width
    # panel hides it, so only the panel's thin top edge keeps that shade.
    chairs = make_chairs(1, random_state=0)
    names = chairs.shape_param_names
    p = chairs.shape_params.copy()
    for name, value in [
        ("back_style", 0),
        ("back_width", 1.0),
        ("back_height", 0.6),
        ("armrests", 0),
        ("stretchers", 0),
        ("seat_depth", 0.5),
    ]:
        p[0, names.index(name)] = value
    front, back = make_chairs(
        shape_params=p, azimuths=[0.0, 180.0], elevations=[20], supersampling=1
    ).images
    # Lambert's law for a face facing up: ambient + diffuse * light_y.
    light = np.array([0.0, 0.55, 0.835])
    light /= np.linalg.norm(light)
    e = np.deg2rad(20.0)
    top = 0.25 + 0.75 * (light[1] * np.cos(e) + light[2] * np.sin(e))
    n_front = np.isclose(front, top, atol=1e-5).sum()
    n_back = np.isclose(back, top, atol=1e-5).sum()
    assert n_front > 100
    assert n_back < 0.25 * n_front


def test_make_chairs_rejects_bad_arguments():
    with pytest.raises(ValueError, match="shape_params"):
        make_chairs(shape_params=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="elevations"):
        make_chairs(1, elevations=[90.0])
    with pytest.raises(ValueError):
        make_chairs(0)

"""ERF map metrics (fcnprobe.analysis.erf) against closed forms; numpy only."""
from __future__ import annotations

import numpy as np
import pytest

from fcnprobe.analysis import erf as E


@pytest.mark.parametrize("n,d", [(1, 1), (4, 1), (10, 1), (3, 2), (5, 3)])
def test_trinomial_variance_is_2nd2_over_3(n, d):
    m = E.trinomial_map(n, d)
    sy, sx = E.axis_std(m)  # the map's centre is its middle entry, (2nd, 2nd)
    assert m.shape == (2 * n * d + 1,) * 2
    assert sy**2 == pytest.approx(2 * n * d * d / 3, rel=1e-12) and sx == pytest.approx(sy, rel=1e-12)
    assert E.trinomial_variance(n, d) == pytest.approx(2 * n * d * d / 3)


def test_trinomial_variance_with_strides():
    assert E.trinomial_variance(3, strides=[2, 2, 2]) == pytest.approx(14.0)  # (2/3)(1 + 4 + 16)


def test_std_is_about_the_centre_not_the_mean():
    m = np.zeros((9, 9))
    m[4, 7] = 1.0  # all mass 3 px right of the centre (4, 4)
    assert E.axis_std(m) == pytest.approx((0.0, 3.0))
    with pytest.raises(ValueError, match="all zeros"):
        E.axis_std(np.zeros((5, 5)))


def test_hca_side_smallest_centred_square():
    m = np.zeros((11, 11))
    m[5, 5], m[5, 8] = 0.6, 0.4
    assert E.hca_side(m, 0.5) == 1  # the centre alone holds 60 %
    assert E.hca_side(m, 0.5, start=1) == 3  # RepLKNet's loop starts at i = 1
    assert E.hca_side(m, 0.99) == 7  # the far entry needs i = 3
    assert E.hca_side(np.ones((8, 8)), 0.99) is None  # no centred square that fits holds 99 %


def test_hca_on_uniform_map_matches_area():
    m = np.ones((31, 31))
    for t in E.HCA_THRESHOLDS[:3]:
        side = E.hca_side(m, t)
        assert (side / 31) ** 2 > t >= ((side - 2) / 31) ** 2


def test_replknet_transform_is_their_log10_formula():
    m = np.random.default_rng(0).random((16, 16)) * 50
    ref = np.log10(m + 1)
    np.testing.assert_allclose(E.replknet_transform(m), ref / ref.max(), rtol=1e-12)


def test_hca_metrics_names_and_scale_dependence():
    g = np.pad(E.trinomial_map(6), 10)
    small, big = E.hca_metrics(g * 1e-9), E.hca_metrics(g * 1e9)
    assert set(small) == {f"{p}_{k}_t{t}" for p in ("hca", "hca_log") for k in ("side_px", "area_frac")
                          for t in (20, 30, 50, 99)}
    for t in (20, 30, 50, 99):  # the raw variant is scale-free; the log variant is not
        assert small[f"hca_side_px_t{t}"] == big[f"hca_side_px_t{t}"]
    assert big["hca_log_side_px_t50"] > small["hca_log_side_px_t50"]
    assert small["hca_area_frac_t50"] == pytest.approx(small["hca_side_px_t50"] ** 2 / g.size)


def test_gaussian_fit_recovers_sigma_and_flags_non_gaussian():
    yy, xx = np.mgrid[:41, :41] - 20.0
    g = np.exp(-yy**2 / (2 * 3.0**2) - xx**2 / (2 * 5.0**2))
    fit = E.fit_gaussian(g)
    assert (fit.sigma_y, fit.sigma_x) == (pytest.approx(3.0, rel=1e-3), pytest.approx(5.0, rel=1e-3))
    assert fit.resid_frac < 1e-3
    box = np.pad(np.ones((21, 21)), 10)  # a flat square is far from Gaussian; a trinomial is close
    assert E.fit_gaussian(box).resid_frac > 0.2 > 0.05 > E.fit_gaussian(np.pad(E.trinomial_map(8), 4)).resid_frac


def test_downsample_and_support_box():
    m = np.arange(130 * 130, dtype=float).reshape(130, 130)
    d = E.downsample(m, 64)
    assert max(d.shape) <= 64 and d.shape == (44, 44)
    assert E.downsample(np.ones((32, 32))).shape == (32, 32)
    z = np.zeros((9, 9))
    z[2:5, 3:8] = 1
    assert E.support_box(z) == (2, 4, 3, 7) and E.support_box(np.zeros((3, 3))) is None


def test_depth_slope_of_sqrt_law_is_half():
    depths = [2, 4, 8, 16, 32] * 2
    assert E.depth_slope(depths, [np.sqrt(2 * d / 3) for d in depths]) == pytest.approx(0.5)
    assert E.depth_slope([4], [1.0]) is None

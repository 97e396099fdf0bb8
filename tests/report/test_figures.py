"""Figure objects and plot helpers: styles, rendering, written files, axes, bands, ERF profiles,
and the written CSVs checked against the records they came from."""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fcnprobe.report import figures as F
from fcnprobe.report import plots as P

QUICK = Path(__file__).resolve().parents[2] / "reports" / "quick"


def test_style_map_gives_unique_stable_pairs():
    models = [f"m{i:02d}" for i in range(24)]
    sm = F.StyleMap.from_models(reversed(models))
    pairs = {(sm[m]["color"], sm[m]["marker"]) for m in models}
    assert len(pairs) == 24  # more than 15 models, still one (colour, marker) pair each
    assert F.StyleMap.from_models(models + ["m03"])["m07"] == sm["m07"]  # order and repeats do not matter
    assert sm["not-on-page"] == F.StyleMap.from_models(models)["not-on-page"]  # stable fallback


def test_slug_and_unique_ids():
    assert F.slug("Accuracy on global_cue (px)!") == "accuracy-on-global-cue-px"
    figs = [F.Figure("svg", "<svg/>", "a", "c", id="x") for _ in range(3)]
    assert [f.id for f in F.unique_ids(figs)] == ["x", "x-2", "x-3"]


def _line_fig():
    fig, ax = F.new(3, 2)
    ax[0][0].plot([1, 2, 3], [3, 1, 2])
    return fig


def test_render_svg_png_and_standalone():
    data = pd.DataFrame({"x": [1, 2, 3], "y": [3.0, 1.0, 2.0]})
    svg = F.render(_line_fig(), "My Plot", "Look for the dip.", 'alt "quoted"', data)
    assert svg.kind == "svg" and svg.id == "my-plot" and svg.content.startswith("<svg role=\"img\"")
    assert "&quot;quoted&quot;" in svg.content and "<?xml" not in svg.content
    assert svg.pandas_call == 'pd.read_csv("figures/my-plot.csv")'
    png = F.to_png(_line_fig(), "alt", "cap", fig_id="p")
    assert png.content.startswith("data:image/png;base64,") and "<svg" in png.svg
    with pytest.raises(ValueError, match="svg' or 'png"):
        F.render(_line_fig(), "x", "c", "a", kind="gif")


def test_write_figures_round_trips_data(tmp_path):
    data = pd.DataFrame({"model": ["a", "b"], "acc_frac": [0.123456789, 1.0]})
    figs = [F.render(_line_fig(), "one", "c", "a", data), F.render(_line_fig(), "one", "c", "a")]
    written = F.write_figures(figs, tmp_path)
    assert sorted(p.name for p in written) == ["one-2.svg", "one.csv", "one.svg"]
    back = pd.read_csv(tmp_path / figs[0].csv_path)
    assert list(back.model) == ["a", "b"] and back.acc_frac[0] == pytest.approx(0.123456789, rel=1e-5)
    assert (tmp_path / "figures" / "one.svg").read_text().lstrip().startswith(("<?xml", "<svg"))


def _labels(ax, which="y") -> list[str]:
    ax.figure.canvas.draw()
    axis = ax.yaxis if which == "y" else ax.xaxis
    lo, hi = sorted(ax.get_ylim() if which == "y" else ax.get_xlim())
    return [t.get_text() for t in axis.get_majorticklabels() if t.get_text() and lo <= t.get_position()[
        1 if which == "y" else 0] <= hi]


@pytest.mark.parametrize("lo,hi,least", [(0.65, 1.9, 4), (1.0, 2.0e3, 8), (1.0, 2.0e4, 5), (1e2, 1e9, 5)])
def test_log_axis_has_enough_labels(lo, hi, least):
    fig, ax = F.new(4, 3)
    ax = ax[0][0]
    ax.plot([1, 2], [lo, hi])
    F.log_axis(ax, "y")
    labels = _labels(ax)
    assert len(labels) >= least, labels
    F.plt.close(fig)


def test_seed_band_median_and_lowest_to_highest_seed():
    df = pd.DataFrame({"model": ["a"] * 4 + ["b"], "x": [0, 0, 0, 1, 0], "y": [1.0, 2.0, 6.0, 5.0, 7.0]})
    band = F.seed_band(df, "model", "x", "y").set_index(["model", "x"])
    assert band.loc[("a", 0), "median"] == 2.0 and band.loc[("a", 0), "n_seeds"] == 3
    assert band.loc[("a", 0), ["min", "max"]].tolist() == [1.0, 6.0]  # 3 seeds: no quantile band, the range
    assert band.loc[("b", 0), ["min", "median", "max"]].tolist() == [7.0, 7.0, 7.0]  # one seed: no band


def test_radial_mass_closed_forms():
    uniform = P.radial_mass(np.ones((9, 9)), (4, 4))
    r = uniform.radius_px.to_numpy()
    assert np.allclose(uniform.mass_frac, (2 * r + 1) ** 2 / 81)  # (2r+1)^2 pixels within Chebyshev r
    delta = np.zeros((7, 7))
    delta[3, 3] = 5.0
    assert np.allclose(P.radial_mass(delta, (3, 3)).mass_frac, 1.0)
    corner = P.radial_mass(np.ones((4, 4)), (0, 0))
    assert corner.mass_frac.tolist() == [1 / 16, 4 / 16, 9 / 16, 1.0]


def test_erf_maps_and_radial_figure_carry_their_data():
    g = np.exp(-((np.arange(17) - 8) ** 2) / 8.0)
    panels = [P.ErfPanel("fcn", False, np.outer(g, g), 13, 5), P.ErfPanel("fcn", True, 2 * np.outer(g, g), 13, 7),
              P.ErfPanel("attention", False, np.ones((17, 17)))]
    maps = P.erf_maps(panels)
    assert maps.kind == "png" and len(maps.data) == 3 * 17 * 17
    assert maps.data.groupby(["model", "trained"]).erf_norm.max().eq(1.0).all()
    radial = P.radial_figure(panels, F.StyleMap.from_models(["fcn", "attention"]))
    last = radial.data.groupby(["model", "trained"]).mass_frac.last()
    assert np.allclose(last, 1.0)
    assert radial.data.query("model == 'fcn'").trf_radius_px.eq(6.0).all()


def test_memory_and_latency_figures_skip_missing_data():
    sm = F.StyleMap.from_models(["a"])
    df = pd.DataFrame({"model": ["a", "a"], "pixels": [1024, 4096], "peak_mem_mb": [None, None],
                       "latency_ms_median": [1.0, 4.0], "latency_ms_iqr": [0.2, 0.4]})
    assert P.memory_figure(df, sm) is None
    lat = P.latency_figure(df, sm)
    assert lat.id == "cost-latency" and lat.data.latency_ms_iqr.tolist() == [0.2, 0.4]


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    """The committed quick-preset sample records, rebuilt into a temporary directory."""
    if not (QUICK / "manifest.json").exists():
        pytest.skip("reports/quick is not in this checkout")
    from fcnprobe.report.build import build_report

    root = tmp_path_factory.mktemp("quick") / "run"
    shutil.copytree(QUICK, root, ignore=shutil.ignore_patterns("index.html", "figures", "*.png"))
    build_report(root)
    from fcnprobe.report.data import RunData

    return root, RunData.load(root)


def test_every_figure_has_an_svg_and_its_csv_link(quick_report):
    root, _ = quick_report
    html = (root / "index.html").read_text()
    ids = sorted(p.stem for p in (root / "figures").glob("*.svg"))
    assert ids and len(ids) == html.count("<figure id=")
    for fid in ids:
        assert f'id="fig-{fid}"' in html
        if (root / "figures" / f"{fid}.csv").exists():
            assert f'pd.read_csv(&#34;figures/{fid}.csv&#34;)' in html or f'pd.read_csv("figures/{fid}.csv")' in html


def test_context_csv_matches_records(quick_report):
    root, run = quick_report
    for task in ("global_cue", "same_different"):
        csv = pd.read_csv(root / "figures" / f"context-{task.replace('_', '-')}-distance.csv")
        recs = run.ok("context", task)
        assert len(csv) == sum(len(a) for a in recs.acc_by_dist_frac)
        for _, rec in recs.iterrows():
            rows = csv[(csv.model == rec.model) & (csv.seed == rec.seed)].sort_values("dist_bin_lo_px")
            want = [math.nan if a is None else a for a in rec.acc_by_dist_frac]
            assert np.allclose(rows.acc_frac, want, rtol=1e-5, equal_nan=True), (task, rec.model)
            assert rows.dist_bin_lo_px.tolist() == list(rec.dist_bin_lo_px)
            assert rows.reach_px.dropna().eq(rec.reach_px).all()


def test_erf_csvs_match_saved_arrays(quick_report):
    root, run = quick_report
    maps = pd.read_csv(root / "figures" / "erf-maps.csv")
    radial = pd.read_csv(root / "figures" / "erf-radial.csv")
    fam = run.ok("erf")
    fam = fam[fam.param_sweep == "family"]
    for (model, trained), g in fam.groupby(["model", "param_trained"]):
        arr = run.array(g.iloc[0].cell_id, "erf_abs")
        got = maps[(maps.model == model) & (maps.trained == bool(trained))].sort_values(["row_px", "col_px"])
        assert np.allclose(got.erf_abs, arr.ravel(), rtol=1e-5), model
        prof = radial[(radial.model == model) & (radial.trained == bool(trained))]
        r0, c0 = g.iloc[0].unit_row_px, g.iloc[0].unit_col_px
        half = int(prof.radius_px.iloc[len(prof) // 2])
        rows, cols = np.indices(arr.shape)
        inside = (np.abs(rows - r0) <= half) & (np.abs(cols - c0) <= half)  # brute force, no helper
        want = arr[inside].sum() / arr.sum()
        assert prof.mass_frac.iloc[len(prof) // 2] == pytest.approx(want, rel=1e-5), model


def test_page_stays_small_and_offline(quick_report):
    root, _ = quick_report
    html = (root / "index.html").read_text()
    assert len(html.encode()) < 5_000_000
    for fetch in ('src="http', "src='http", 'href="http', "url(http", "@import"):
        assert fetch not in html


def test_series_sharing_a_colour_differ_in_line_style():
    for i in range(8):
        styles = [F.style(j) for j in (i, i + 8, i + 16)]
        assert len({s["color"] for s in styles}) == 1
        assert len({str(s["linestyle"]) for s in styles}) == 3


def _forward(run):
    fwd = run.ok("cost", variant="forward")
    return fwd[fwd.param_batch == fwd.param_batch.min()]


def test_cost_csvs_match_records(quick_report):
    root, run = quick_report
    fwd = _forward(run)
    scaling = pd.read_csv(root / "figures" / "cost-scaling.csv")
    assert len(scaling) == len(fwd[fwd.get("forward_ok", True) != False])  # noqa: E712
    for row in scaling.itertuples():
        rec = fwd[(fwd.model == row.model) & (fwd.param_size == row.param_size) & (fwd.seed == row.seed)]
        assert len(rec) == 1, row
        assert row.macs == pytest.approx(rec.macs.iloc[0], rel=1e-5, nan_ok=True)
        assert row.latency_ms_median == pytest.approx(rec.latency_ms_median.iloc[0], rel=1e-5, nan_ok=True)
        assert row.pixels == row.param_size ** 2
    memory = pd.read_csv(root / "figures" / "cost-memory.csv")
    for row in memory.itertuples():
        recs = fwd[(fwd.model == row.model) & (fwd.param_size ** 2 == row.pixels)].peak_mem_mb.dropna()
        assert row.peak_mem_mb == pytest.approx(np.median(recs), rel=1e-5), row
    pareto = pd.read_csv(root / "figures" / "cost-pareto.csv")
    at32 = fwd[fwd.param_size == 32].groupby("model").macs.mean()
    assert len(pareto) and all(row.macs == pytest.approx(at32[row.model], rel=1e-5) for row in pareto.itertuples())
    assert pareto.acc_beyond_fcn_reach.between(0, 1).all()


def test_shape_csvs_match_records(quick_report):
    root, run = quick_report
    loc = run.ok("shape", "locate")
    bars = pd.read_csv(root / "figures" / "shape-locate-iou.csv").set_index("design")
    for (model, adapter, split), g in loc.groupby(["model", "param_adapter", "param_split"]):
        assert bars.loc[f"{model} + {adapter}", split] == pytest.approx(g.iou_mean.mean(), rel=1e-5, abs=1e-9)
    for split, g in loc.groupby("param_split"):
        assert bars.loc["constant guess (baseline)", split] == pytest.approx(g.iou_mean_const.mean(), rel=1e-5)
    loss = pd.read_csv(root / "figures" / "shape-multi-output-loss.csv")
    multi = run.ok("shape", "multi_output")
    assert len(loss) == sum(len(c) for c in multi.loss_curve)
    for rec in multi.itertuples():
        got = loss[(loss.design == rec.param_design) & (loss.seed == rec.seed)]
        assert got.step.tolist() == list(rec.loss_steps)
        assert np.allclose(got.loss, rec.loss_curve, rtol=1e-5)


def test_depth_and_shift_csvs_match_records(quick_report):
    root, run = quick_report
    depth = pd.read_csv(root / "figures" / "erf-depth.csv")
    sweep = run.ok("erf")
    sweep = sweep[sweep.param_sweep == "depth"]
    assert len(depth) == len(sweep)
    assert np.allclose(np.sort(depth.erf_std_px), np.sort(sweep.erf_std_px.astype(float)), rtol=1e-5)
    shift = pd.read_csv(root / "figures" / "context-shift.csv")
    recs = run.ok("context", "shift")
    for row in shift.itertuples():
        rec = recs[(recs.model == row.model) & (recs.param_distance == row.param_distance) & (recs.seed == row.seed)]
        assert row.acc_frac == pytest.approx(rec.acc_frac.iloc[0], rel=1e-5)

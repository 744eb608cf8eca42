"""Report figures read back from their matplotlib objects: titles, axis labels, legends where more
than one series is drawn, normalised heatmaps with robust limits, log-scale norms, probit DET axes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from dis_core.report import figures as F
from dis_core.report.html import gap_stats


def _labelled_series(ax) -> int:
    return sum(1 for h in ax.get_lines() + list(ax.collections) + list(ax.patches) + list(ax.containers)
               if not str(h.get_label()).startswith("_"))


def _check_readable(fig) -> None:
    """Every drawn panel has a title (or the figure a suptitle), both axis labels, and a legend (its own
    or the figure's) when it carries more than one labelled series."""
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.axison and ax.get_label() != "<colorbar>"]
    assert panels
    has_sup = fig._suptitle is not None and fig._suptitle.get_text()
    for ax in panels:
        assert ax.get_title() or has_sup, "a panel without a title"
        assert ax.get_xlabel(), f"panel {ax.get_title()!r} has no x label"
        sib = ax.get_shared_y_axes().get_siblings(ax)  # a shared y axis is labelled once
        assert any(a.get_ylabel() or any(t.get_text() for t in a.get_yticklabels()) for a in sib), \
            f"panel {ax.get_title()!r} has no y label"
        if _labelled_series(ax) > 1:
            assert ax.get_legend() is not None or fig.legends, f"panel {ax.get_title()!r}: several series, no legend"


def _scores(n=6, seed=0):
    """A score matrix with a strong diagonal and one absurd cell (-400), as real runs have."""
    rng = np.random.default_rng(seed)
    s = rng.normal(-5, 1, (n, n))
    s[np.diag_indices(n)] += 4
    s[0, 3] = -400.0
    return s


def test_heatmap_is_normalised_diverging_robust_and_ordered_by_dyad():
    s = _scores()
    pids = [f"p{i}" for i in range(6)]
    dyads = ["b", "a", "c", "a", "b", "c"]
    fig = F.heatmap_figure(s, pids, "scores", dyads=dyads)
    ax = fig.axes[0]
    im = ax.images[0]
    lo, hi = im.get_clim()
    assert lo == -hi and 2.0 <= hi < 10, "symmetric robust limits, not set by the -400 cell"
    assert im.get_cmap().name == "RdBu_r"  # ColorBrewer diverging, colour-blind safe
    # partners side by side: a, a, b, b, c, c
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == ["p1 (a)", "p3 (a)", "p0 (b)", "p4 (b)", "p2 (c)", "p5 (c)"]
    # the image holds per-data t-normalised scores (each column against the other models), clipped
    from dis_core.score.scoring import tnorm, znorm

    order = [1, 3, 0, 4, 2, 5]
    np.testing.assert_allclose(im.get_array(), np.clip(tnorm(s)[np.ix_(order, order)], lo, hi))
    assert "clipped" in fig.axes[1].get_ylabel() and "t-norm" in fig.axes[1].get_ylabel()
    # each column's best model is marked: here the own model (strong diagonal), i.e. on the diagonal
    marks = fig.axes[0].collections[0].get_offsets()
    np.testing.assert_array_equal(np.asarray(marks)[:, 0], np.asarray(marks)[:, 1])
    _check_readable(fig)
    zfig = F.heatmap_figure(s, pids, "scores", dyads=dyads, norm="z-norm")
    zim = zfig.axes[0].images[0]
    zlo, zhi = zim.get_clim()
    np.testing.assert_allclose(zim.get_array(), np.clip(znorm(s)[np.ix_(order, order)], zlo, zhi))


def test_heatmap_without_dyads_clusters_similar_people_together():
    """Two groups of three whose models score each other's data high: clustering keeps groups contiguous."""
    rng = np.random.default_rng(1)
    g = np.array([0, 1, 0, 1, 0, 1])
    s = -5 + 3 * (g[:, None] == g[None, :]) + rng.normal(0, 0.1, (6, 6))
    order = F.display_order([""] * 6, s)
    groups = g[order]
    assert (np.diff(groups) != 0).sum() == 1, groups


def test_det_is_on_normal_deviate_axes():
    """Equal-variance Gaussian genuine/impostor scores give a straight DET line of slope -1 on probit axes."""
    t = np.linspace(-4, 6, 400)
    fpr = norm.sf(t)  # impostors ~ N(0, 1)
    tpr = norm.sf(t - 2.0)  # genuine ~ N(2, 1)
    fig = F.roc_det_figure({"flow, t-norm (AUC 0.92)": (fpr, tpr), "gaussian, t-norm (AUC 0.90)": (fpr, tpr)},
                           "verification")
    det = fig.axes[1]
    line = det.get_lines()[0]
    x, y = line.get_xdata(), line.get_ydata()
    keep = (np.abs(x) < 3) & (np.abs(y) < 3)
    slope, icpt = np.polyfit(x[keep], y[keep], 1)
    assert slope == pytest.approx(-1.0, abs=1e-3) and icpt == pytest.approx(-2.0, abs=1e-3)
    labels = [tk.get_text() for tk in det.get_xticklabels()]
    assert "50" in labels and "1" in labels
    np.testing.assert_allclose(det.get_xticks()[labels.index("1")], norm.ppf(0.01))
    assert "normal-deviate" in det.get_xlabel()
    _check_readable(fig)
    # each method in the headline's colour (the Gaussian was the default cycle's red, chance's colour there)
    colours = {ln.get_label().split(",")[0]: ln.get_color() for ln in fig.axes[0].get_lines()}
    assert colours["flow"] == F.HEADLINE_STYLE["flow"][0] and colours["gaussian"] == F.HEADLINE_STYLE["gaussian"][0]


def test_norm_histograms_are_on_a_log_axis_and_name_open_end_bins():
    """The legend's median bin: the first bin is [0, 1e-3) and the last [1e4, inf) (they were labelled by the
    drawn edges, "[0.0001, 0.001)" and "[1e+04, 1e+05)"); an inner bin by its edges."""
    from dis_core.report.norm_hist import norms_hist_figure
    from dis_core.score.blocks import NORM_BINS

    nb = len(NORM_BINS) - 1
    counts = {"self": np.eye(nb)[0] * 5, "partner": np.eye(nb)[10] * 3, "stranger": np.eye(nb)[nb - 1] * 2}
    ax = norms_hist_figure(NORM_BINS, counts, "norms", rows="windows").axes[0]
    assert ax.get_xscale() == "log" and "windows" in ax.get_ylabel()
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["self (n=5, median < 0.001)", f"partner (n=3, median in [{NORM_BINS[10]:.3g}, {NORM_BINS[11]:.3g}))",
                     "stranger (n=2, median > 1e+04)"]
    _check_readable(ax.figure)


def test_loss_grid_has_a_training_validation_legend():
    hist = {"train": list(np.linspace(3, 1, 20)), "val": list(np.linspace(3.2, 1.4, 20))}
    fig = F.loss_grid_figure([("p1", hist, 12), ("p2", hist, 15), ("p3", hist, 19)], "curves")
    texts = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert "training" in texts and "validation" in texts
    _check_readable(fig)


def test_headline_shows_intervals_and_chance():
    row = {"feature_set": "head_pose", "participants": 6, "chance_top1": 1 / 6}
    for k, v in (("top1", 0.8), ("eer", 0.1), ("auc", 0.9)):
        row.update({k: v, k + "_lo": v - 0.1, k + "_hi": v + 0.05})
    fig = F.headline_figure([dict(row, method="flow"), dict(row, method="gaussian", top1=0.5, top1_lo=0.3, top1_hi=0.6)], "headline")
    texts = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    # no autoregressive entry without its rows; under 10 people EER and AUC are drawn as no claim (grey, hollow),
    # as the table says, where they had looked as firm as top-1
    assert set(texts) == {"flow (DIS)", "baseline (Gaussian)", "chance", "EER, AUC under 10 people: no claim"}
    eer = [c for c in fig.axes[1].containers]
    assert eer and all(c.lines[0].get_markerfacecolor() == "none" for c in eer)
    top1 = fig.axes[0].containers
    assert all(c.lines[0].get_markerfacecolor() != "none" for c in top1)
    ten = F.headline_figure([dict(row, method="flow", participants=10)], "headline")
    assert "EER, AUC under 10 people: no claim" not in {t.get_text() for leg in ten.legends for t in leg.get_texts()}
    fig = F.headline_figure([dict(row, method="flow"), dict(row, method="ar")], "headline")
    assert "baseline (autoregressive)" in {t.get_text() for leg in fig.legends for t in leg.get_texts()}
    ax = fig.axes[0]
    chance = [ln for ln in ax.get_lines() if ln.get_label() == "chance"]
    assert chance and np.allclose(chance[0].get_xdata(), 1 / 6)
    _check_readable(fig)


def test_the_excerpts_figure_names_and_colours_methods_as_the_headline_does():
    """Its legend said "gaussian" and "ar" and drew the AR baseline in another colour than the headline figure."""
    rows, whole = [], {}
    for m in ("flow", "gaussian", "ar"):
        base = {"method": m, "chance_top1": 0.1, "people": 10, "participants": 10}
        for k, v in (("top1", 0.6), ("eer", 0.2)):
            base.update({k: v, k + "_lo": v - 0.1, k + "_hi": v + 0.1})
        rows += [dict(base, seconds=L) for L in (8.0, 16.0)]
        whole[m] = base
    fig = F.excerpts_figure(rows, whole, "excerpts")
    texts = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert sorted(texts) == sorted(["flow (DIS)", "baseline (Gaussian)", "baseline (autoregressive)", "chance"])
    import matplotlib.colors as mc

    drawn = {c.get_label(): mc.to_hex(c.lines[0].get_color()) for c in fig.axes[0].containers
             if not c.get_label().startswith("_")}
    assert drawn == {v: mc.to_hex(c) for c, v in F.HEADLINE_STYLE.values()}
    _check_readable(fig)


def test_signature_spectrum_peaks_at_twice_the_sway_frequency():
    """Yaw = 10 sin(2 pi 0.5 t): the angular speed |d yaw/dt| repeats at 1 Hz, so its spectrum peaks there."""
    t = np.arange(0, 40, 1 / 15)
    hp = np.zeros((len(t), 3))
    hp[:, 0] = 10 * np.sin(2 * np.pi * 0.5 * t)
    hp[100:104] = np.nan  # a detector gap: the longest run of face frames is used
    f, p = F.speed_spectrum(t, hp)
    assert f[np.argmax(p)] == pytest.approx(1.0, abs=15 / 128)
    fig = F.signature_figure([("session s1 (training)", t, hp), ("session s2 (held-out)", t, hp)],
                             [("p1", 2.5), ("p2", 0.3), ("p3", -0.2)], "p1: head-motion signature")
    _check_readable(fig)


def test_the_signatures_angular_speed_is_the_rotation_between_frames_not_the_euler_differences():
    """A head pitched 40 degrees and turned about its own vertical axis at a steady 20 deg/s: its angular speed is
    20 deg/s throughout (the spectrum's mean power holds no more than numerical noise), where the norm of the Euler
    angles' differences wobbled between 1.3 and 1.8 times it."""
    from scipy.spatial.transform import Rotation

    from dis_core.extract.pose import rotation_to_euler

    t = np.arange(0, 30, 1 / 30)
    turn = Rotation.from_euler("x", 40, degrees=True) * Rotation.from_rotvec(np.outer(np.radians(20 * t), [0, 1, 0.3]) / np.hypot(1, 0.3))
    hp = rotation_to_euler(turn.as_matrix())
    f, p = F.speed_spectrum(t, hp)
    assert p.max() < 1e-6, "a steady speed has no fluctuation to show"
    euler = np.linalg.norm(np.diff(hp, axis=0), axis=1) * 30
    assert euler.max() / euler.min() > 1.2  # what the figure showed before


def test_an_empty_signature_panel_says_why():
    """A person left out of scoring had a blank confusions panel, and sessions without 16 face frames in a row a
    blank spectrum (a linear 0-1 axis labelled log scale, an empty legend)."""
    t = np.arange(0, 10, 1 / 15)
    hp = np.zeros((len(t), 3))
    hp[::10] = np.nan  # a face at most 9 frames in a row
    fig = F.signature_figure([("session s1 (training)", t, hp)], [], "p1: head-motion signature")
    spectrum, confusions = fig.axes[1], fig.axes[2]
    assert [x.get_text() for x in spectrum.texts] == ["no session has a run of 16 frames with a face"]
    assert spectrum.get_legend() is None and not spectrum.get_lines()
    assert "not scored" in confusions.texts[0].get_text()
    whole = np.zeros((len(t), 3))
    whole[:, 0] = np.sin(t)
    fig = F.signature_figure([("session s1 (training)", t, whole)], [("p1", 1.0)], "p1")
    assert not fig.axes[1].texts and not fig.axes[2].texts and fig.axes[1].get_legend() is not None


def test_gap_stats_counts_runs_without_a_face():
    t = np.arange(10) / 10.0
    det = np.array([1, 1, 0, 0, 0, 1, 1, 0, 1, 1], bool)
    n, longest = gap_stats(t, det)
    assert n == 2 and longest == pytest.approx(0.3)
    assert gap_stats(t, np.ones(10, bool)) == (0, 0.0)
    assert gap_stats(t, np.zeros(10, bool))[0] == 1


def test_the_workbooks_qc_table_holds_the_pages_gap_columns(tmp_path):
    """Each video's gaps and longest gap come from its extraction file, as on the page: frames 60-61 and 120
    hidden at 15 fps are 2 gaps, the longest 2 frames (2/15 s); a video without a file gets empty cells."""
    import pandas as pd

    from dis_core.report.html import with_gap_columns
    from tests.synthrun import make_run

    m = make_run(tmp_path / "out", n=2, seconds=20, hidden_of=lambda k, si: [60, 61, 120] if k == 0 else [])
    qc = pd.DataFrame({"unit_id": [e.unit_id for e in m.entries] + ["gone"], "status": "ok"})
    got = with_gap_columns(qc, tmp_path / "out")
    assert list(got["gaps"][:2]) == [2, 0] and got["longest_gap_s"][0] == pytest.approx(2 / 15)
    assert got["longest_gap_s"][1] == 0 and got["gaps"].isna()[2] and got["longest_gap_s"].isna()[2]
    assert list(got["status"]) == ["ok"] * 3
    # the page shows the same figures from the same computation: it takes the table's columns, and computes them
    # only for a table without them (the CSV)
    from dis_core.report.html import gather_video_qc

    page = gather_video_qc(tmp_path / "out", got, thumbs=False)
    assert [(v.gaps, v.longest_gap_s) for v in page[:2]] == [(2, pytest.approx(2 / 15)), (0, 0.0)]
    assert gather_video_qc(tmp_path / "out", got.assign(gaps=[5, 0, None]), thumbs=False)[0].gaps == 5
    assert gather_video_qc(tmp_path / "out", qc, thumbs=False)[0].gaps == 2


def test_report_figures_are_high_dpi_png_with_provenance(tmp_path):
    """Every figure the report draws is saved at REPORT_DPI (the norms figure was at the default 110)."""
    from PIL import Image

    from dis_core.report.norm_hist import norms_hist_png
    from dis_core.score.blocks import NORM_BINS

    norms_hist_png(tmp_path / "n.png", NORM_BINS, {"self": np.ones(len(NORM_BINS) - 1)}, "norms", {"dis_version": "x"})
    F.heatmap_png(tmp_path / "h.png", np.eye(3), ["a", "b", "c"], "scores", {"dis_version": "x"})
    for name in ("n.png", "h.png"):
        im = Image.open(tmp_path / name)
        assert round(im.info["dpi"][0]) == F.REPORT_DPI
        assert '"dis_version": "x"' in im.info["Description"]


def test_figures_of_a_large_cohort_stay_bounded_and_readable(tmp_path):
    """500 people: the heatmap is page-sized (no names, no outlines: a cell is a few pixels), the
    map drops names, and the loss and landmark grids show their first GRID_MAX panels and say so; each is
    saved for real (a grid of 500 panels was taller than matplotlib can draw, a heatmap of 500 ~7 GB)."""
    import matplotlib.pyplot as plt

    n = 500
    pids = [f"p{k:03d}" for k in range(n)]
    s = _scores(n, seed=3)
    fig = F.heatmap_figure(s, pids, "scores", dyads=[f"d{k // 2}" for k in range(n)])
    assert max(fig.get_size_inches()) <= 13 < max(F.heatmap_figure(_scores(80), pids[:80], "scores").get_size_inches())
    ax = fig.axes[0]
    assert not ax.get_xticklabels() and not ax.patches and "500 participants" in ax.get_xlabel()
    _check_readable(fig)
    plt.close("all")
    F.heatmap_png(tmp_path / "h.png", s, pids, "scores", {})
    assert (tmp_path / "h.png").stat().st_size < 20e6

    fig = F.participant_map_figure(np.random.default_rng(0).normal(size=(n, 2)), pids, [(0, 1)], "map")
    assert not fig.axes[0].texts and "names omitted" in fig.axes[0].collections[0].get_label()
    plt.close("all")

    hist = {"train": [3.0, 2.0, 1.5], "val": [3.1, 2.2, 1.9]}
    F.loss_grid_png(tmp_path / "l.png", [(p, hist, 2) for p in pids], "curves", {})
    fig = F.loss_grid_figure([(p, hist, 2) for p in pids], "curves")
    drawn = [a for a in fig.axes if a.axison]
    assert len(drawn) == F.GRID_MAX and drawn[-1].get_title() == pids[F.GRID_MAX - 1]
    assert f"the first {F.GRID_MAX} of 500 participants" in fig._suptitle.get_text()
    plt.close("all")
    pts = {p: np.random.default_rng(k).normal(size=(30, 2)) for k, p in enumerate(pids)}
    F.landmark_pca_grid_png(tmp_path / "m.png", pts, np.array([0.4, 0.2]), "landmarks", {})
    fig = F.landmark_pca_grid_figure(pts, np.array([0.4, 0.2]), "landmarks")
    assert len([a for a in fig.axes if a.axison]) == F.GRID_MAX and "of 500 participants" in fig._suptitle.get_text()
    # shared axes span every frame (the 0.5-99.5 percentiles cut off the widest participants' frames), and with
    # the training counts the two parts are told apart
    wide = {"a": np.array([[0.0, 0.0], [1.0, 1.0]]), "b": np.array([[0.0, 0.0], [50.0, -40.0], [0.1, 0.1]])}
    fig = F.landmark_pca_grid_figure(wide, np.array([0.4, 0.2]), "landmarks", n_train={"a": 1, "b": 2})
    ax = fig.axes[0]
    assert ax.get_xlim()[0] < 0 < 50 < ax.get_xlim()[1] and ax.get_ylim()[0] < -40 < 1 < ax.get_ylim()[1]
    assert [len(c.get_offsets()) for c in fig.axes[1].collections] == [2, 1]  # b: 2 training, 1 held-out
    assert {t.get_text() for leg in fig.legends for t in leg.get_texts()} == {"training frames", "held-out frames"}
    few = F.loss_grid_figure([(p, hist, 2) for p in pids[:5]], "curves")
    assert len([a for a in few.axes if a.axison]) == 5 and few._suptitle.get_text() == "curves"  # all fit: no note
    plt.close("all")


def test_tied_best_models_each_get_their_dot():
    """All-tied scores put every dot on the first row: participant d looked identified (a dot in their
    square) while their rank is 2.5 and top-1 credits them a quarter."""
    import matplotlib.pyplot as plt
    import numpy as np

    from dis_core.report.figures import heatmap_figure

    s = np.zeros((4, 4))
    s[:, 0] = [5.0, 1.0, 5.0, 0.0]  # column a: models a and c tie
    s[1, 1] = 2.0  # column b: model b alone
    fig = heatmap_figure(s, ["a", "b", "c", "d"], "t")
    ax = fig.axes[0]
    dots = [c for c in ax.collections if c.get_label().startswith("best model for this data")][0]
    at = [t.get_text() for t in ax.get_xticklabels()]  # the display order (clustered without dyads)
    shown = sorted((at[c], at[r]) for c, r in np.asarray(dots.get_offsets()).astype(int))
    assert shown == sorted([("a", "a"), ("a", "c"), ("b", "b"), *[(c, r) for c in "cd" for r in "abcd"]])
    plt.close(fig)


def test_a_heatmap_column_without_scores_gets_no_best_model_and_the_legend_clears_long_names():
    """nanargmax of a column with no finite score is row 0: a 'best model' dot was drawn for data nobody scored.
    With five 60-character names the legend sat on the column names (its offset was a share of a small axes)."""
    import matplotlib.pyplot as plt
    import numpy as np

    from dis_core.report.figures import heatmap_figure

    s = np.random.default_rng(0).normal(size=(5, 5)) + 3 * np.eye(5)
    s[:, 2] = np.nan
    names = [f"participant_with_a_very_long_identifier_{k:02d}_abcdefghijklmnopqrs" for k in range(5)]
    fig = heatmap_figure(s, names, "t")
    ax = fig.axes[0]
    dots = [c for c in ax.collections if c.get_label().startswith("best model for this data")][0]
    assert len(dots.get_offsets()) == 4  # one per scored column
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    ticks_bottom = min(t.get_window_extent(r).y0 for t in ax.get_xticklabels())
    assert ax.get_legend().get_window_extent(r).y1 < ticks_bottom
    plt.close(fig)


@pytest.mark.parametrize("n", [2, 3, 12])
def test_a_heatmap_title_stays_over_its_matrix_at_few_people(n):
    """At three people the matrix is 1.3 inches wide: the report's title ran on under the colour bar."""
    import matplotlib.pyplot as plt

    s = np.random.default_rng(1).normal(size=(n, n)) + 3 * np.eye(n)
    fig = F.heatmap_figure(s, [f"p{k}" for k in range(n)], "head_spectrum: held-out data scored by every model (flows)")
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    ax, bar = fig.axes[0], fig.axes[1]
    title = ax.title.get_window_extent(r)
    assert title.x1 <= bar.get_window_extent(r).x0 and title.x0 >= 0
    assert "every model" in ax.get_title()  # wrapped, not cut
    plt.close(fig)

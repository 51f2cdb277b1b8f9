"""The report's chart: the legend beside the bars, not over them; a zero score visible and unlike a missing one."""

import math

import pandas as pd

from ensemble.report import chart_figure, metric_table


def test_the_legend_sits_outside_the_plot_area():
    import matplotlib.pyplot as plt

    frame = pd.DataFrame({"bm25": [0.97, 0.5], "ce": [0.99, 0.6]}, index=["sw", "yo"])
    fig = chart_figure(frame, "nDCG@10")
    fig.canvas.draw()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent()
    plot = ax.get_window_extent()
    assert legend.x0 >= plot.x1  # entirely to the right of the axes: no bar is hidden behind it
    plt.close(fig)


def test_a_zero_is_marked_and_labelled_and_a_missing_score_is_labelled_otherwise():
    import matplotlib.pyplot as plt

    frame = pd.DataFrame({"bm25": [0.0, 0.5], "ce": [float("nan"), 0.6]}, index=["sw", "yo"])
    fig = chart_figure(frame, "nDCG@10")
    ax = fig.axes[0]
    labels = {text.get_text(): text.xy for text in ax.texts}
    bars = {
        system: [p.get_x() + p.get_width() / 2 for p in container.patches]
        for system, container in zip(frame.columns, ax.containers)
    }
    assert set(labels) == {"0", "n/a"}
    assert math.isclose(labels["0"][0], bars["bm25"][0]) and math.isclose(labels["n/a"][0], bars["ce"][0])
    markers = [line for line in ax.lines if line.get_marker() == "v"]
    assert len(markers) == 1 and math.isclose(markers[0].get_xdata()[0], bars["bm25"][0])
    plt.close(fig)


def test_the_metric_table_averages_over_the_languages_every_system_has():
    result = {"scores": {"bm25": {"sw": {"ndcg@10": 0.4}, "yo": {"ndcg@10": 0.6}}, "ce": {"sw": {"ndcg@10": 0.8}}}}
    table = metric_table(result, "ndcg@10", ["bm25", "ce"])
    assert list(table.index) == ["sw", "avg"]
    assert table.loc["avg", "bm25"] == 0.4 and table.loc["avg", "ce"] == 0.8

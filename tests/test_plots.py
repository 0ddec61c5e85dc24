"Figures of recorded runs: what a short or a diverged run draws."
import numpy as np, pytest
import matplotlib; matplotlib.use('Agg')
import matplotlib.pyplot as plt
from fastai_anneal.plots import plot_history, plot_comparison, plot_lrs, schedule_values
from fastai_anneal.schedules import cos_anneal_scheds

@pytest.fixture(autouse=True)
def _close(): yield; plt.close('all')

def test_a_single_epoch_is_drawn_as_a_point():
    "A line through one point draws nothing: a one-epoch history gets a marker (`compare --epochs 1`)"
    ax = plot_history({'cos': [[0.5], [0.6]], 'flat': [[0.4, 0.7]]})
    markers = {l.get_label(): l.get_marker() for l in ax.get_lines()}
    assert markers['cos'] == 'o' and markers['flat'] in ('None', None, '')

def test_zoom_skips_a_diverged_runs_nan_and_inf():
    "The zoomed panel's limits come from the finite values; the NaN run is left to `plot_history`"
    hist = {'ok': [[0.1, 0.5, 0.8, 0.9]], 'diverged': [[0.1, 0.2, np.nan, np.inf]]}
    fig = plot_comparison({'ok': [1e-3]*8, 'diverged': [1e-1]*8}, hist, zoom=0.5)
    lo,hi = fig.axes[1].get_ylim()
    assert np.isfinite([lo, hi]).all() and lo <= 0.8 - 0.01 + 1e-9 and hi >= 0.9 + 0.01 - 1e-9

def test_per_group_lrs_draw_a_line_per_group():
    "`schedule_values` of per-group lrs gives (batches, groups): one line per group, as before the argument checks"
    lrs = schedule_values(cos_anneal_scheds(np.array([1e-4, 1e-3])), 3, 10)['lr']
    assert lrs.shape == (30, 2)
    assert len(plot_lrs({'cos': lrs}, n_epoch=3).get_lines()) == 2

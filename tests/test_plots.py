"Figures of recorded runs: what a short or a diverged run draws."
import numpy as np, pytest
import matplotlib; matplotlib.use('Agg')
import matplotlib.pyplot as plt
from PIL import Image
from fastai_anneal.plots import plot_history, plot_comparison, plot_lrs, plot_schedule, schedule_values, save_figure, check_size
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
    assert (lo, hi) == pytest.approx((0.79, 0.91)) and fig.axes[1].get_xlim() == pytest.approx((2.5, 4.5))  # the last epochs only

def test_per_group_lrs_draw_a_line_per_group():
    "`schedule_values` of per-group lrs gives (batches, groups): one line per group, as before the argument checks"
    lrs = schedule_values(cos_anneal_scheds(np.array([1e-4, 1e-3])), 3, 10)['lr']
    assert lrs.shape == (30, 2)
    assert len(plot_lrs({'cos': lrs}, n_epoch=3).get_lines()) == 2

# ---------------------------------------------------------------- from the mutation audit of plots.py (twenty-fifth session)
def test_schedule_values_positions_and_size():
    ("P02, P03, P05, P38: values at `i/total` (0 to (total-1)/total, as `ParamScheduler`); exactly `MAX_POINTS` allowed; an "
     "empty dict refused; a bad `n_batch` named")
    np.testing.assert_array_equal(schedule_values({'lr': lambda p: p}, 2, 5)['lr'], np.arange(10)/10)
    assert check_size(10**4, 10**3) == (10**4, 10**3)
    with pytest.raises(ValueError, match=r'n_epoch\*n_batch must be <= 10,000,000'): check_size(10**4 + 1, 10**3)
    with pytest.raises(TypeError, match='scheds must be a non-empty dict'): schedule_values({}, 2, 5)
    with pytest.raises(ValueError, match='^n_batch must be >= 1, got 0'): schedule_values({'lr': lambda p: p}, 2, 0)

def test_plot_schedule_draws_each_hyper_against_epochs():
    "P06, P07: one panel per hyper-parameter, x in epochs (a batch is 1/n_batch), labelled with its name"
    fig = plot_schedule({'lr': lambda p: 1e-3*(1-p), 'mom': lambda p: 0.9}, 2, n_batch=5)
    assert [ax.get_ylabel() for ax in fig.axes] == ['lr', 'mom']
    x = fig.axes[0].get_lines()[0].get_xdata()
    np.testing.assert_allclose(x, np.arange(10)/5)

def test_plot_lrs_axes_scale_style_and_legend():
    "P08, P09, P11, P12, P14, P18: x in epochs (or fractions), a log scale on request, dashed names on top, the legend flag, no empty list"
    ax = plot_lrs({'a': [1e-3]*4, 'b': [1e-2]*4}, n_epoch=2, log=True, dashed=['b'])
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), [0, 0.5, 1, 1.5])
    assert ax.get_yscale() == 'log' and ax.get_xlabel() == 'epoch' and ax.get_legend() is not None
    assert [(l.get_label(), l.get_linestyle()) for l in ax.get_lines()] == [('a', '-'), ('b', '--')]
    ax = plot_lrs({'a': [1e-3]*4}, legend=False)
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), [0, 0.25, 0.5, 0.75])
    assert ax.get_yscale() == 'linear' and ax.get_xlabel() == 'fraction of training' and ax.get_legend() is None
    with pytest.raises(ValueError, match=r"lrs\['a'\] must be a non-empty list of lrs.*got shape \(0,\)"): plot_lrs({'a': []})

def test_plot_history_draws_the_mean_and_the_seeds_band():
    "P13, P19, P20, P21, P23: epochs from 1, the mean over seeds, a min-max band, the metric's name, the legend flag"
    ax = plot_history({'a': [[0.1, 0.5, 0.6], [0.3, 0.9, 0.8]]}, ylabel='valid loss', legend=False)
    line, = ax.get_lines()
    np.testing.assert_allclose(line.get_xdata(), [1, 2, 3]); np.testing.assert_allclose(line.get_ydata(), [0.2, 0.7, 0.7])
    ys = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert (ys.min(), ys.max()) == pytest.approx((0.1, 0.9))
    assert ax.get_ylabel() == 'valid loss' and ax.get_legend() is None

def test_plot_comparison_panels_and_checks():
    ("P24, P25, P26, P32: the same schedules in the same order; bad lrs refused before a figure is made; the lr panel in epochs; one "
     "legend for the figure, none on the panels")
    with pytest.raises(ValueError, match='in the same order'): plot_comparison({'a': [1e-3], 'b': [1e-3]}, {'b': [[.5]], 'a': [[.5]]})
    n = len(plt.get_fignums())
    with pytest.raises(ValueError, match=r"lrs\['a'\]"): plot_comparison({'a': [[[1e-3]]]}, {'a': [[.5]]})
    assert len(plt.get_fignums()) == n
    fig = plot_comparison({'a': [1e-3]*8, 'b': [1e-2]*8}, {'a': [[.5, .6, .7, .8]], 'b': [[.4, .5, .6, .7]]})
    assert fig.axes[0].get_lines()[0].get_xdata().max() == pytest.approx(3.5)  # 8 batches over 4 epochs
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ['a', 'b'] and len(fig.legends) == 1
    assert fig.axes[0].get_legend() is None and fig.axes[1].get_legend() is None

def test_save_figure_path_and_dpi(tmp_path):
    "P33, P34, P35: a folder named like an image is refused (figure closed), an upper-case suffix is an image, `dpi` is used"
    (tmp_path/'d.png').mkdir()
    with pytest.raises(ValueError, match='path must be a file name ending in an image format'): save_figure(plt.figure(), tmp_path/'d.png')
    assert plt.get_fignums() == []
    assert save_figure(plt.figure(figsize=(2, 1)), tmp_path/'a.PNG', dpi=50).exists()
    assert Image.open(tmp_path/'a.PNG').size == (100, 50)

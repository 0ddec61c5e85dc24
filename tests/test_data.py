"Embedded datasets: shapes, determinism, no network, image folders of every layout, and the bad inputs they reject."
import random
from pathlib import Path
import numpy as np, pytest, torch
from PIL import Image
from fastai_anneal.data import *
from fastai_anneal.data import mnist1d_arrays, _mnist1d_arrays

# ---------------------------------------------------------------- MNIST-1D
def test_mnist1d_offline_and_published_sizes(monkeypatch):
    "Generated locally: the package's downloader and any URL open fail the test"
    import mnist1d.data, urllib.request
    def no_network(*a, **k): raise AssertionError("MNIST-1D must be generated offline, not downloaded")
    monkeypatch.setattr(mnist1d.data, 'get_dataset', no_network)
    monkeypatch.setattr(urllib.request, 'urlopen', no_network)
    _mnist1d_arrays.cache_clear()
    x,y,xt,yt = mnist1d_arrays()
    assert x.shape == (4000, 40) and xt.shape == (1000, 40) and x.dtype == np.float32
    assert y.dtype == np.int64 and set(np.unique(y)) == set(range(10)) and set(np.unique(yt)) == set(range(10))
    assert abs(float(np.concatenate([x, xt]).std()) - 1) < 1e-3  # the package standardizes the whole set

def test_mnist1d_leaves_global_rngs_alone():
    "`make_dataset` reseeds `random` and `np.random`; a first (uncached) call must not change what a caller's seed gives"
    _mnist1d_arrays.cache_clear()
    random.seed(123); np.random.seed(123)
    mnist1d_arrays()
    assert random.random() == random.Random(123).random()
    assert np.random.rand() == np.random.RandomState(123).rand()

def test_mnist1d_arrays_are_the_callers():
    "The generated arrays are cached: a caller that rescales its copy in place must not change the next caller's data"
    x = mnist1d_arrays()[0]
    dls = mnist1d_dls(bs=100, seed=0, device='cpu')
    x *= 10
    assert abs(float(mnist1d_arrays()[0].std()) - 1) < 0.01
    assert abs(float(torch.stack([b for b,_ in dls.train_ds]).std()) - 1) < 0.01

def test_digits_split_leaves_both_sides():
    with pytest.raises(ValueError, match=r'valid_pct must leave images on both sides of the split \(1797 images\), got 0.0001'):
        digits_dls(valid_pct=1e-4)
    with pytest.raises(ValueError, match='valid_pct must leave images on both sides'): digits_dls(valid_pct=0.9999)

def test_mnist1d_dls_and_cnn():
    dls = mnist1d_dls(bs=100, seed=0, device='cpu')
    assert len(dls.train) == 40 and len(dls.valid) == 10
    xb,yb = dls.one_batch()
    assert xb.shape == (100, 1, 40) and xb.dtype == torch.float32 and yb.shape == (100,) and yb.dtype == torch.int64
    model = mnist1d_cnn()
    assert model(xb).shape == (100, 10)
    assert sum(p.numel() for p in model.parameters()) == 5210  # the paper's ~5k-parameter CNN
    assert [m.kernel_size for m in model.body if isinstance(m, torch.nn.Conv1d)] == [(5,), (3,), (3,)]
    assert mnist1d_cnn(3)(xb).shape == (100, 3)

def test_shuffle_follows_seed():
    first = lambda seed: next(iter(mnist1d_dls(seed=seed, device='cpu').train))[1]
    assert torch.equal(first(0), first(0))
    assert not torch.equal(first(0), first(1))

def test_digits():
    dls = digits_dls(bs=32, device='cpu')
    assert (len(dls.train_ds), len(dls.valid_ds)) == (1438, 359)
    xb,yb = dls.one_batch()
    assert xb.shape == (32, 1, 8, 8) and 0 <= float(xb.min()) and float(xb.max()) <= 1
    assert digits_cnn()(xb).shape == (32, 10)
    assert len(dls.train) == 45  # 1438 = 44*32 + 30: the partial batch is trained on
    valid = lambda d: torch.stack([x for x,_ in d.valid_ds])
    assert torch.equal(valid(dls), valid(digits_dls(bs=32, seed=1, device='cpu')))  # the split is fixed, whatever the shuffle's seed

@pytest.mark.parametrize('call,match', [
    (lambda: mnist1d_dls(bs=0), 'bs must be >= 1, got 0'),
    (lambda: mnist1d_dls(seed=-1), '^seed must be >= 0'),  # the argument given, not `data_seed`
    (lambda: mnist1d_arrays(seed=-1), '^seed must be >= 0, got -1'),
    (lambda: mnist1d_dls(bs=2.5), 'bs must be a whole number'),
    (lambda: mnist1d_cnn(0), 'n_out must be >= 1'),
    (lambda: digits_dls(valid_pct=1.5), r'valid_pct must be in \(0, 1\), got 1.5'),
    (lambda: digits_cnn('ten'), 'n_out must be a whole number'),
    (lambda: image_folder_resnet(0), 'n_out must be >= 1'),
    (lambda: check_data('mnist'), "data must be one of 'mnist1d', 'digits' or an image folder, got 'mnist'"),
    (lambda: check_data(3), 'data must be one of'),
    (lambda: get_data('mnist1d', seed=-2), 'seed must be >= 0')])
def test_bad_arguments(call, match):
    with pytest.raises((ValueError, TypeError), match=match): call()

def test_get_data_pairs():
    assert list(DATASETS) == ['mnist1d', 'digits']
    for name,shape in (('mnist1d', (100, 1, 40)), ('digits', (64, 1, 8, 8))):
        dls,model = get_data(name, device='cpu')
        xb,_ = dls.one_batch()
        assert xb.shape == shape and model(xb).shape == (shape[0], 10)

# ---------------------------------------------------------------- image folders
def _img(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.RandomState(seed).randint(0, 255, (20, 20, 3), dtype=np.uint8)).save(path)

@pytest.mark.parametrize('layout', ['subfolders', 'train/valid', 'names'])
def test_image_folder_layouts(tmp_path, layout):
    "Class subfolders (random split), train/valid subfolders, or a flat folder of `<class>_<n>.png` (Oxford-IIIT Pets)"
    for i in range(10):
        cls = ('cat', 'great_pyrenees')[i % 2]
        if layout == 'subfolders': _img(tmp_path/cls/f'{i}.png', i)
        elif layout == 'train/valid': _img(tmp_path/('valid' if i < 4 else 'train')/cls/f'{i}.png', i)
        else: _img(tmp_path/f'{cls}_{i}.png', i)
    path,found,classes = check_image_folder(tmp_path)
    assert (path, found, classes) == (tmp_path, layout, ['cat', 'great_pyrenees'])
    assert check_data(str(tmp_path)) == tmp_path
    dls,model = get_data(tmp_path, device='cpu')
    assert list(dls.vocab) == ['cat', 'great_pyrenees'] and dls.c == 2
    assert (len(dls.train_ds), len(dls.valid_ds)) == ((6, 4) if layout == 'train/valid' else (8, 2))
    assert len(dls.train) == 1 and dls.train.bs == len(dls.train_ds)  # bs=32 clamped to 6 or 8: one batch, not none
    dls = image_folder_dls(tmp_path, bs=2, size=16, device='cpu')
    xb,yb = dls.one_batch()
    assert xb.shape == (2, 3, 16, 16) and abs(float(xb.mean())) < 2 and float(xb.min()) < 0  # normalized (ImageNet statistics)
    model.eval()
    assert model(xb).shape == (2, 2)

def test_image_folder_rejects(tmp_path):
    with pytest.raises(ValueError, match='does not exist'): check_image_folder(tmp_path/'nope')
    (tmp_path/'empty').mkdir()
    with pytest.raises(ValueError, match='holds no image files'): check_image_folder(tmp_path/'empty')
    for i in range(3): _img(tmp_path/'one'/'cats'/f'{i}.png', i)
    with pytest.raises(ValueError, match=r"at least 2 classes of images, found 1: \['cats'\]"): check_image_folder(tmp_path/'one')
    for i in range(3): _img(tmp_path/'flat'/f'img{i}.png', i)
    with pytest.raises(ValueError, match="class subfolders, or names like"): check_image_folder(tmp_path/'flat')
    for i in range(4): _img(tmp_path/'tv'/'train'/f'c{i%2}'/f'{i}.png', i)
    (tmp_path/'tv'/'valid').mkdir()
    with pytest.raises(ValueError, match=r"valid' holds no image files"): check_image_folder(tmp_path/'tv')
    for i in range(2): _img(tmp_path/'tiny'/f'c{i}'/'0.png', i)
    with pytest.raises(ValueError, match=r'gives 2 training and 0 validation images'): image_folder_dls(tmp_path/'tiny', device='cpu')
    # the command line checks the split with the layout, before any model is built (it printed a traceback for --lr 1e-3)
    with pytest.raises(ValueError, match=r'gives 2 training and 0 validation images at valid_pct=0.2'): check_data(tmp_path/'tiny')
    assert check_data(tmp_path/'tiny', valid_pct=0.5) == tmp_path/'tiny'
    assert check_data(tmp_path/'tiny', valid_pct=0.75) == tmp_path/'tiny'  # int(1.5) = 1 image for validation, as fastai cuts it
    with pytest.raises(ValueError, match='does not exist or is not a folder'): check_image_folder(tmp_path/'tiny'/'c0'/'0.png')
    with pytest.raises(ValueError, match='size must be >= 1'): image_folder_dls(tmp_path/'one', size=0)
    # an image beside class subfolders (fastai labels it with the folder's name: a class of its own, or a KeyError once validated)
    for i in range(10): _img(tmp_path/'pets'/('cat', 'dog')[i % 2]/f'{i}.png', i)
    _img(tmp_path/'pets'/'cover.png', 99)
    with pytest.raises(ValueError, match=r"holds images beside its class subfolders.*: cover.png; move them"): check_data(tmp_path/'pets')
    _img(tmp_path/'tv'/'valid'/'c0'/'0.png', 0); _img(tmp_path/'tv'/'train'/'extra.png', 5)  # train/ has an image of no class
    with pytest.raises(ValueError, match=r"beside its class subfolders.*: train/extra.png;"): check_image_folder(tmp_path/'tv')
    (tmp_path/'tv'/'train'/'extra.png').unlink(); _img(tmp_path/'tv'/'valid'/'c9'/'0.png', 9)
    with pytest.raises(ValueError, match=r"valid' holds classes that .*train' lacks: \['c9'\]"): check_image_folder(tmp_path/'tv')

@pytest.mark.parametrize('make', [lambda: (mnist1d_dls(bs=200, device='cpu'), mnist1d_cnn()), lambda: (digits_dls(device='cpu'), digits_cnn())],
                         ids=['mnist1d', 'digits'])
def test_embedded_data_work_with_fastais_inference_and_export(make, tmp_path):
    "The embedded loaders are fastai `Datasets`-backed: `predict` (an input alone, or a dataset item), `test_dl`, `export`/`load_learner`"
    from fastai.learner import Learner, load_learner
    from fastai.losses import CrossEntropyLossFlat
    dls,model = make()
    learn = Learner(dls, model, loss_func=CrossEntropyLossFlat(), path=tmp_path)
    x,y = dls.valid_ds[0]
    _,idx,probs = learn.predict(x)
    assert probs.shape == (10,) and int(idx) == int(probs.argmax()) and torch.allclose(learn.predict((x, y))[2], probs)
    preds,_ = learn.get_preds(dl=dls.test_dl([dls.valid_ds[i][0] for i in range(3)]))
    assert torch.allclose(preds[0], probs, atol=1e-6)
    learn.export('m.pkl')
    assert torch.allclose(load_learner(tmp_path/'m.pkl').predict(x)[2], probs, atol=1e-6)

@pytest.mark.parametrize('make', [mnist1d_dls, digits_dls], ids=['mnist1d', 'digits'])
def test_embedded_loaders_read_items_as_stored(make):
    "No per-item transforms and no worker processes (each made an epoch 4-20x slower): a loader reads the stored `(x, y)` itself"
    dls = make(device='cpu')
    for dl in dls.loaders:
        assert dl.fake_l.num_workers == 0 and dl.dataset[3] is dl.dataset.tls[0].items[3]

# ---------------------------------------------------------------- from the mutation audit of data.py (twenty-fifth session)
def test_mnist1d_data_seed_reaches_the_generator(monkeypatch):
    "D03: `data_seed`/`seed` is the generator's seed (faked generator: no 2 s generation), and each seed is its own cache entry"
    import mnist1d.data
    seen = []
    def fake(args):
        seen.append(args.seed)
        r = np.random.RandomState(args.seed)
        return dict(x=r.rand(4, 40), y=np.arange(4), x_test=r.rand(2, 40), y_test=np.arange(2))
    monkeypatch.setattr(mnist1d.data, 'make_dataset', fake)
    _mnist1d_arrays.cache_clear()
    try:
        a,b = mnist1d_arrays(7)[0],mnist1d_arrays(8)[0]
        assert seen == [7, 8] and not np.array_equal(a, b)
    finally: _mnist1d_arrays.cache_clear()  # the next test gets the real dataset

def test_embedded_loaders_default_to_fastais_device(monkeypatch):
    "D14: `device=None` is fastai's `default_device()` (a GPU when present), not left `None` (the CPU, whatever the machine)"
    import fastai_anneal.data as data
    monkeypatch.setattr(data, 'default_device', lambda: torch.device('cpu', 0))  # a device `None` is not, on any machine
    assert mnist1d_dls().device == torch.device('cpu', 0) and digits_dls().device == torch.device('cpu', 0)

def test_image_folder_layout_edges(tmp_path, monkeypatch):
    ("D31, D36, D53: a class subfolder named 'train' is a class (the train/valid layout needs both); a flat folder with one name "
     "that is not `<class>_<n>` is refused by name; an existing folder given as a bare word is a folder, not a mistyped dataset")
    for i in range(4): _img(tmp_path/'a'/('train', 'dog')[i % 2]/f'{i}.png', i)
    assert check_image_folder(tmp_path/'a')[1:] == ('subfolders', ['dog', 'train'])
    for i in range(4): _img(tmp_path/'b'/f"{('cat', 'dog')[i % 2]}_{i}.png", i)
    _img(tmp_path/'b'/'cover.png', 9)
    with pytest.raises(ValueError, match="holds images directly: they need class subfolders"): check_image_folder(tmp_path/'b')
    monkeypatch.chdir(tmp_path)
    assert check_data('a', valid_pct=0.5) == Path('a')

@pytest.mark.parametrize('layout', ['subfolders', 'names'])
def test_image_folder_split_follows_seed_and_valid_pct(tmp_path, layout):
    "D47, D48, D49, D54: the random split is `seed`'s (the same seed, the same split; `get_data` passes it on) at `valid_pct`"
    for i in range(20):
        cls = ('cat', 'dog')[i % 2]
        _img(tmp_path/cls/f'{i}.png' if layout == 'subfolders' else tmp_path/f'{cls}_{i}.png', i)
    valid = lambda dls: sorted(p.name for p in dls.valid_ds.items)
    a = valid(image_folder_dls(tmp_path, seed=1, device='cpu'))
    assert a == valid(image_folder_dls(tmp_path, seed=1, device='cpu')) and a != valid(image_folder_dls(tmp_path, seed=0, device='cpu'))
    assert valid(get_data(tmp_path, seed=1, device='cpu')[0]) == a
    assert len(image_folder_dls(tmp_path, valid_pct=0.5, device='cpu').valid_ds) == 10

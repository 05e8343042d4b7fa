"""Config validation and loading, depth profiles, and the data streams (teacher, npz, CIFAR-10)."""

import pickle

import numpy as np
import pytest

from nfd_sde.model import (
    CallableProfile,
    Config,
    ConstantProfile,
    DataStream,
    PiecewiseLinearProfile,
    as_profile,
    config_from_dict,
    load_config,
    load_stream,
    parse_override,
    to_dict,
    with_profiles,
)

# --------------------------------------------------------------------------------------- config


def test_defaults_are_valid_and_round_trip():
    config = Config()
    assert config.model.activation in ("linear", "relu", "tanh", "gelu")
    assert isinstance(config.model.beta_profile, ConstantProfile)
    assert load_config() == config
    # The resolved dict rebuilds the same config (profiles serialise to constants/knots).
    assert config_from_dict(to_dict(config)) == config


def test_toml_load_and_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        '[model]\nactivation = "tanh"\ndim = 5\n'
        "beta_profile = [[0.0, 1.0], [1.0, 0.5]]\n"
        "[network]\nwidth = 32\ndepth = 7\n"
        "[run]\nkernel_depths = [0.25]\n"
    )
    config = load_config(path)
    assert config.model.activation == "tanh"
    assert config.model.dim == 5
    assert (config.network.width, config.network.depth) == (32, 7)
    assert isinstance(config.model.beta_profile, PiecewiseLinearProfile)
    assert config.run.kernel_depths == (0.25,)
    # Fields not in the file keep their defaults.
    assert config.training == Config().training

    config = load_config(
        path,
        [
            "network.width=64",  # overrides the file
            "model.activation=linear",  # bare string, no quotes
            'training.loss="mse"',  # quoted string
            "model.lr_profile=[[0, 2], [1, 4]]",
            "training.eta=0.25",
        ],
    )
    assert config.network.width == 64
    assert config.network.depth == 7  # from the file, untouched
    assert config.model.activation == "linear"
    assert config.training.eta == 0.25
    assert float(config.model.lr_profile(0.5)) == pytest.approx(3.0)


def test_parse_override_types():
    assert parse_override("network.width=12") == ("network", "width", 12)
    assert parse_override("training.eta=0.5") == ("training", "eta", 0.5)
    assert parse_override("model.activation=relu") == ("model", "activation", "relu")
    assert parse_override("model.beta_profile=[[0,1],[1,2]]")[2] == [[0, 1], [1, 2]]


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.activation=swish", r"model\.activation='swish'.*choose one of"),
        ("network.width=0", r"network\.width=0: must be an integer >= 1"),
        ("network.depth=0", r"network\.depth=0: must be an integer >= 1"),
        ("network.depth=2.5", r"network\.depth=2\.5: must be an integer"),
        ("solver.particles=-3", r"solver\.particles=-3"),
        ("network.backward=sideways", r"network\.backward='sideways'"),
        ("nosuch.width=3", r"unknown config section 'nosuch'"),
        ("model.widht=3", r"unknown field\(s\) \['widht'\] in section \[model\]"),
        ("model.beta_profile=[[0,1],[1,nan]]", r"model\.beta_profile: knot .* not finite"),
        ("model.lr_profile=inf", r"model\.lr_profile: the constant inf is not finite"),
        ("model.beta_profile=[[0,1],[0.5,2],[0.5,3]]", r"model\.beta_profile: .*strictly incr"),
        ("model.beta_profile=[[0,1],[1]]", r"model\.beta_profile: each knot must be a pair"),
        ("model.beta_profile=[]", r"model\.beta_profile: the knot list is empty"),
        ("training.eta=nan", r"training\.eta=nan: must be a finite number"),
        ("training.eta=-1.0", r"training\.eta=-1\.0: must be >= 0"),
        ("model.gamma0=0.0", r"model\.gamma0=0\.0: must be > 0"),
        ("run.kernel_depths=[0.5, 2.0]", r"run\.kernel_depths.*\[0, 1\]"),
        ("data.source=npz", r"data\.path is required"),
        ("network.width", r"must look like section\.field=value"),
    ],
)
def test_bad_values_name_the_field(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, [override])


def test_standard_backward_takes_every_representation():
    for representation in ("field", "weight", "auto"):
        config = load_config(
            None, ["solver.backward=standard", f"solver.representation={representation}"]
        )
        assert config.solver.representation == representation


def test_config_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\nwidth = ")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_config(bad)
    flat = tmp_path / "flat.toml"
    flat.write_text("width = 3\n")
    with pytest.raises(ValueError, match=r"'width' must be a \[section\] table"):
        load_config(flat)


def test_replace_and_unknown_section():
    config = Config().replace(network={"width": 3})
    assert config.network.width == 3
    with pytest.raises(ValueError, match="unknown config section 'nets'"):
        Config().replace(nets={"width": 3})
    with pytest.raises(ValueError, match=r"network\.width=0"):
        Config().replace(network={"width": 0})


# ------------------------------------------------------------------------------------- profiles


def test_constant_profile():
    profile = as_profile(2.5, name="p")
    values = np.asarray(profile(np.linspace(0, 1, 5)))
    assert values.shape == (5,)
    np.testing.assert_array_equal(values, 2.5)


def test_knot_profile_interpolates_and_is_flat_beyond_the_ends():
    profile = as_profile([[0.2, 1.0], [0.6, 3.0], [1.0, 2.0]], name="p")
    t = np.array([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    expected = [1.0, 1.0, 2.0, 3.0, 2.5, 2.0]
    np.testing.assert_allclose(np.asarray(profile(t)), expected, rtol=1e-6)  # float32 rounding
    assert profile.to_serialisable() == [[0.2, 1.0], [0.6, 3.0], [1.0, 2.0]]


def test_callable_profile():
    profile = as_profile(lambda t: 1.0 + t**2, name="p")
    assert isinstance(profile, CallableProfile)
    np.testing.assert_allclose(np.asarray(profile(np.array([0.0, 0.5, 1.0]))), [1.0, 1.25, 2.0])
    # A callable returning a scalar is broadcast to the shape of t.
    assert np.asarray(as_profile(lambda t: 3.0, name="p")(np.zeros((2, 3)))).shape == (2, 3)


def test_callable_profile_errors_name_the_field():
    def blows_up(t):
        return np.where(t > 0.5, np.inf, 1.0)

    # The message points at the first bad grid point: t = 129/256 on the 257-point grid.
    with pytest.raises(ValueError, match=r"model\.beta_profile: .*not finite at t=0\.5039"):
        with_profiles(Config(), beta=blows_up)
    with pytest.raises(ValueError, match=r"model\.lr_profile: the profile is not finite"):
        with_profiles(Config(), lr=lambda t: 1.0 / t)  # inf at t = 0
    with pytest.raises(ValueError, match=r"model\.lr_profile: evaluating the profile .* failed"):
        with_profiles(Config(), lr=lambda t: np.ones(3))  # cannot broadcast to the shape of t
    with pytest.raises(ValueError, match=r"model\.beta_profile: evaluating the profile .* failed"):
        with_profiles(Config(), beta=lambda t: t["oops"])


def test_with_profiles_keeps_the_other_profile():
    base = load_config(None, ["model.lr_profile=0.5"])
    config = with_profiles(base, beta=lambda t: 2.0 - t)
    assert float(config.model.beta_profile(0.25)) == pytest.approx(1.75)
    assert config.model.lr_profile == base.model.lr_profile


# ---------------------------------------------------------------------------------- teacher data


def _teacher_config(*overrides):
    return load_config(
        None,
        ["model.dim=6", "model.outputs=2", "training.steps=3", "training.batch=5"]
        + ["data.eval_size=7", *overrides],
    )


def test_teacher_stream_shapes_and_sphere():
    config = _teacher_config()
    stream = load_stream(config)
    assert stream.x_train.shape == (3, 5, 6)
    assert stream.y_train.shape == (3, 5, 2)
    assert stream.x_eval.shape == (7, 6)
    assert stream.y_eval.shape == (7, 2)
    assert (stream.steps, stream.batch, stream.dim, stream.outputs) == (3, 5, 6, 2)
    # |x|^2 / d = 1 for every input (float64 numpy: rounding only).
    np.testing.assert_allclose(np.sum(stream.x_train**2, -1) / 6, 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.sum(stream.x_eval**2, -1) / 6, 1.0, rtol=1e-12)
    # Targets are not degenerate, and the data is a function of data.seed only.
    assert np.std(stream.y_train) > 0.05
    again = load_stream(config.replace(run={"seed": 5}))
    np.testing.assert_array_equal(again.x_train, stream.x_train)
    other = load_stream(config.replace(data={"seed": 2}))
    assert not np.allclose(other.x_train, stream.x_train)


def test_linear_teacher_is_linear():
    stream = load_stream(_teacher_config("data.teacher=linear"))
    x = np.concatenate([stream.x_train.reshape(-1, 6), stream.x_eval])
    y = np.concatenate([stream.y_train.reshape(-1, 2), stream.y_eval])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    np.testing.assert_allclose(x @ coef, y, atol=1e-10)  # 22 points, 6 unknowns: exact fit


def test_tanh_teacher_is_not_linear():
    stream = load_stream(_teacher_config("data.teacher=tanh"))
    x = np.concatenate([stream.x_train.reshape(-1, 6), stream.x_eval])
    y = np.concatenate([stream.y_train.reshape(-1, 2), stream.y_eval])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    assert np.max(np.abs(x @ coef - y)) > 1e-3


def test_teacher_cross_entropy_is_one_hot():
    stream = load_stream(_teacher_config("training.loss=cross_entropy"))
    for y in (stream.y_train.reshape(-1, 2), stream.y_eval):
        assert set(np.unique(y)) <= {0.0, 1.0}
        np.testing.assert_array_equal(y.sum(-1), 1.0)
    with pytest.raises(ValueError, match=r"cross-entropy needs model\.outputs >= 2"):
        load_stream(_teacher_config("training.loss=cross_entropy", "model.outputs=1"))


# -------------------------------------------------------------------------------------- npz data


def _npz_config(path, *overrides):
    return _teacher_config("data.source=npz", f'data.path="{path}"', *overrides)


def test_npz_round_trip(tmp_path):
    stream = load_stream(_teacher_config())
    path = tmp_path / "stream.npz"
    stream.save_npz(path)
    loaded = load_stream(_npz_config(path))
    for name in ("x_train", "y_train", "x_eval", "y_eval"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(stream, name))


def test_npz_per_example_targets(tmp_path):
    rng = np.random.default_rng(0)
    x_train, x_eval = rng.standard_normal((3, 5, 6)), rng.standard_normal((7, 6))
    # MSE: (K, B) targets become (K, B, 1).
    path = tmp_path / "scalar.npz"
    y_train, y_eval = rng.standard_normal((3, 5)), rng.standard_normal(7)
    np.savez(path, x_train=x_train, y_train=y_train, x_eval=x_eval, y_eval=y_eval)
    stream = load_stream(_npz_config(path, "model.outputs=1"))
    np.testing.assert_array_equal(stream.y_train[..., 0], y_train)
    assert stream.y_eval.shape == (7, 1)
    # Cross-entropy: (K, B) integer targets are class indices, made one-hot.
    path = tmp_path / "labels.npz"
    labels = rng.integers(0, 3, (3, 5))
    np.savez(path, x_train=x_train, y_train=labels, x_eval=x_eval, y_eval=np.arange(7) % 3)
    stream = load_stream(_npz_config(path, "model.outputs=3", "training.loss=cross_entropy"))
    np.testing.assert_array_equal(stream.y_train.argmax(-1), labels)
    np.testing.assert_array_equal(stream.y_train.sum(-1), 1.0)
    np.testing.assert_array_equal(stream.y_eval.argmax(-1), np.arange(7) % 3)


def _good_arrays():
    rng = np.random.default_rng(1)
    return {
        "x_train": rng.standard_normal((3, 5, 6)),
        "y_train": rng.standard_normal((3, 5, 2)),
        "x_eval": rng.standard_normal((7, 6)),
        "y_eval": rng.standard_normal((7, 2)),
    }


@pytest.mark.parametrize(
    "change, message",
    [
        ({"x_train": np.zeros((15, 6))}, r"x_train must have shape \(K, B, d\), got \(15, 6\)"),
        ({"y_train": np.zeros((3, 4, 2))}, r"y_train must have shape \(3, 5\) or \(3, 5, C\)"),
        ({"y_train": np.zeros((3, 5, 2, 1))}, r"y_train must have shape"),
        ({"x_eval": np.zeros((7, 4))}, r"x_eval must have shape \(P, 6\), got \(7, 4\)"),
        ({"x_eval": np.zeros(6)}, r"x_eval must have shape \(P, 6\)"),
        ({"y_eval": np.zeros((8, 2))}, r"y_eval must have shape \(7,\)"),
        ({"y_eval": np.zeros(7)}, r"y_eval must have shape"),
        ({"x_eval": np.full((7, 6), np.nan)}, r"x_eval contains non-finite values"),
        ({"y_train": np.full((3, 5, 2), np.inf)}, r"y_train contains non-finite values"),
        ({"y_eval": None}, r"missing array\(s\) \['y_eval'\]"),
    ],
)
def test_npz_wrong_shapes(tmp_path, change, message):
    arrays = {**_good_arrays(), **change}
    arrays = {name: value for name, value in arrays.items() if value is not None}
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message):
        load_stream(_npz_config(path))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.dim=4"], r"input dimension 6 but model\.dim=4; set model\.dim=6"),
        (["model.outputs=3"], r"2 output\(s\) but model\.outputs=3"),
        (["training.steps=2"], r"3 steps of batch 5.*training\.steps=2"),
    ],
)
def test_npz_inconsistent_with_config(tmp_path, overrides, message):
    path = tmp_path / "s.npz"
    np.savez(path, **_good_arrays())
    with pytest.raises(ValueError, match=message):
        load_stream(_npz_config(path, *overrides))


def test_npz_bad_labels_and_missing_file(tmp_path):
    arrays = _good_arrays()
    path = tmp_path / "labels.npz"
    np.savez(
        path,
        x_train=arrays["x_train"],
        y_train=np.full((3, 5), 3),
        x_eval=arrays["x_eval"],
        y_eval=np.zeros(7, int),
    )
    ce = ("model.outputs=3", "training.loss=cross_entropy")
    with pytest.raises(ValueError, match=r"class labels must lie in \[0, 3\)"):
        load_stream(_npz_config(path, *ce))
    np.savez(
        path,
        x_train=arrays["x_train"],
        y_train=np.full((3, 5), 0.5),
        x_eval=arrays["x_eval"],
        y_eval=np.zeros(7),
    )
    with pytest.raises(ValueError, match="must be class indices"):
        load_stream(_npz_config(path, *ce))
    with pytest.raises(FileNotFoundError, match=r"data\.path=.*no such \.npz file"):
        load_stream(_npz_config(tmp_path / "missing.npz"))


def test_datastream_save_npz_keys(tmp_path):
    stream = DataStream(*(np.zeros(s) for s in [(1, 2, 3), (1, 2, 1), (4, 3), (4, 1)]))
    stream.save_npz(tmp_path / "s.npz")
    with np.load(tmp_path / "s.npz") as raw:
        assert sorted(raw.files) == ["x_eval", "x_train", "y_eval", "y_train"]


# ------------------------------------------------------------------------------------- CIFAR-10

CIFAR_PER_FILE = 8
CIFAR_TEST = 6
LABEL_PIXEL_STEP = 20  # pixel 0 of every image is label * 20, so the label can be read back


def _write_cifar(root, rng):
    """A tiny CIFAR-10 in the genuine python-pickle layout (bytes keys, uint8 (n, 3072) data)."""
    root.mkdir()
    # Per-feature offsets and scales differ, so that standardisation has work to do.
    offset = rng.integers(0, 100, 3072)
    scale = rng.integers(10, 100, 3072)

    def batch(n, name):
        labels = [int(v) for v in rng.integers(0, 10, n)]
        data = np.clip(offset + scale * rng.random((n, 3072)), 0, 255).astype(np.uint8)
        data[:, 0] = np.array(labels) * LABEL_PIXEL_STEP
        raw = {b"batch_label": name.encode(), b"labels": labels, b"data": data}
        raw[b"filenames"] = [f"{name}_{i}.png".encode() for i in range(n)]
        with (root / name).open("wb") as fh:
            pickle.dump(raw, fh, protocol=2)
        return data, labels

    train = [batch(CIFAR_PER_FILE, f"data_batch_{i}") for i in range(1, 6)]
    test = batch(CIFAR_TEST, "test_batch")
    x_train = np.concatenate([d for d, _ in train]).astype(float)
    y_train = np.concatenate([labels for _, labels in train])
    return x_train, y_train, test[0].astype(float), np.array(test[1])


def _cifar_config(root, steps, batch, eval_size):
    return load_config(
        None,
        [
            "data.source=cifar10",
            f'data.path="{root}"',
            "model.dim=3072",
            "model.outputs=10",
            f"training.steps={steps}",
            f"training.batch={batch}",
            f"data.eval_size={eval_size}",
        ],
    )


def test_cifar10_flatten_standardise_one_hot(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    x_all, _, x_test, y_test = _write_cifar(root, np.random.default_rng(0))
    n = 5 * CIFAR_PER_FILE
    stream = load_stream(_cifar_config(root, steps=5, batch=CIFAR_PER_FILE, eval_size=4))
    assert stream.x_train.shape == (5, CIFAR_PER_FILE, 3072)
    assert stream.y_train.shape == (5, CIFAR_PER_FILE, 10)
    assert stream.x_eval.shape == (4, 3072)
    assert stream.y_eval.shape == (4, 10)
    # steps * batch uses every training image, so each feature has mean 0 and std 1 over them
    # (up to the 1e-8 guard added to the std; every raw std here is > 1, so rtol 1e-6).
    x = stream.x_train.reshape(n, 3072)
    np.testing.assert_allclose(x.mean(0), 0.0, atol=1e-9)
    np.testing.assert_allclose(x.std(0), 1.0, rtol=1e-6)
    # Targets are one-hot and agree with the label written into pixel 0 (read back after
    # undoing the standardisation with the training statistics).
    mean, std = x_all.mean(0), x_all.std(0) + 1e-8
    y = stream.y_train.reshape(n, 10)
    np.testing.assert_array_equal(y.sum(-1), 1.0)
    pixel0 = x[:, 0] * std[0] + mean[0]
    np.testing.assert_array_equal(y.argmax(-1), np.round(pixel0 / LABEL_PIXEL_STEP))
    # Eval: the first test images, standardised with the *training* statistics.
    np.testing.assert_allclose(stream.x_eval, (x_test[:4] - mean) / std, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(stream.y_eval, np.eye(10)[y_test[:4]])


def test_cifar10_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data\.path=.*is not a directory"):
        load_stream(_cifar_config(tmp_path / "nowhere", steps=1, batch=1, eval_size=1))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="expected data_batch_1..data_batch_5"):
        load_stream(_cifar_config(empty, steps=1, batch=1, eval_size=1))
    root = tmp_path / "cifar-10-batches-py"
    _write_cifar(root, np.random.default_rng(1))
    too_many = 5 * CIFAR_PER_FILE + 1
    with pytest.raises(ValueError, match=rf"cannot supply steps\*batch={too_many}"):
        load_stream(_cifar_config(root, steps=1, batch=too_many, eval_size=1))
    with pytest.raises(ValueError, match=r"data\.eval_size=7"):
        load_stream(_cifar_config(root, steps=1, batch=1, eval_size=CIFAR_TEST + 1))


def test_cifar10_subset_is_seeded(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    _write_cifar(root, np.random.default_rng(2))
    config = _cifar_config(root, steps=2, batch=3, eval_size=1)
    a, b = load_stream(config), load_stream(config)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    c = load_stream(config.replace(data={"seed": 7}))
    assert not np.array_equal(a.x_train, c.x_train)


def test_digits_source_is_standardised_one_hot_and_held_out():
    """scikit-learn's digits: d = 64, 10 one-hot classes, standardised on the training pool,
    eval images held out of the training draws, the split set by data.seed."""
    from nfd_sde.model import load_config, load_stream

    overrides = ["data.source=digits", "model.dim=64", "model.outputs=10", "data.eval_size=50"]
    overrides += ["training.steps=400", "training.batch=8"]  # 3200 draws: three passes
    stream = load_stream(load_config(None, overrides))
    assert stream.x_train.shape == (400, 8, 64) and stream.y_train.shape == (400, 8, 10)
    assert stream.x_eval.shape == (50, 64)
    assert np.all(stream.y_train.sum(axis=-1) == 1) and np.all(stream.y_eval.sum(axis=-1) == 1)
    train = stream.x_train.reshape(-1, 64)
    assert abs(train.mean()) < 0.05 and 0.9 < np.mean(train**2) < 1.0  # blank pixels stay 0
    held = {tuple(np.round(x, 6)) for x in stream.x_eval}
    assert not held & {tuple(np.round(x, 6)) for x in train}
    other = load_stream(load_config(None, [*overrides, "data.seed=2"]))
    assert not np.allclose(other.x_eval, stream.x_eval)
    with pytest.raises(ValueError, match="model.dim"):
        load_stream(load_config(None, ["data.source=digits", "model.outputs=10"]))
    ce = load_config(None, [*overrides, "training.loss=cross_entropy"])
    np.testing.assert_array_equal(load_stream(ce).y_eval, stream.y_eval)

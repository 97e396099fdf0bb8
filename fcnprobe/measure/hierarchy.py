"""Layer-wise linear probes on globally pooled frozen features, and mean attention distance.

How global and how abstract does a representation become with depth? Following
Alain & Bengio ("Understanding intermediate layers using linear classifier
probes", 2016) we freeze a model, average every block's output over space, and
fit a linear classifier per block to read a whole-image attribute. Following
Hewitt & Liang ("Designing and interpreting probes with control tasks", 2019)
every accuracy comes with controls:

* a *shuffled-label floor*: the same probe fit and scored on permuted labels
  (train and test), so nothing links input and label: chance, plus whatever
  the probe gains from label imbalance;
* a *control task*: random but consistent labels per input type, which a
  probe can only fit through what the features say about the type. As in H&L,
  where the type is the word a part-of-speech label is a function of, the type
  here should be the attributes the real label is a function of: the colour
  pair for same_different, the pair of rows for aligned, the pair of columns
  for left_of. *Selectivity* = accuracy - control accuracy: high when the
  features expose the relation itself, not merely its ingredients.

Blocks (``block_names``): the outermost modules of the trunk that are a
conv-BN-ReLU block, a transformer encoder layer, a global-context or non-local
block, or a Linear layer (cnn_fc's FC), in forward order; a model with none of
these gets every Conv2d. Pooling: a (B, C, h, w) map is averaged over (h, w), a
batch-first token sequence (B, T, D) over T, a (B, N) vector is kept.

Mean attention distance (Raghu et al., "Do Vision Transformers See Like
Convolutional Neural Networks?", 2021): for each query token, the attention-
weighted Euclidean distance in pixels to the keys, averaged over queries, heads
and images, per layer. PyTorch's encoder layer calls its attention with
``need_weights=False`` (and may take a fused fast path), so the weights are not
exposed; a forward pre-hook on each ``nn.TransformerEncoderLayer`` takes the
layer's input (and its float ``src_mask``, an additive bias on the logits such as
a relative-position bias) and recomputes them from ``self_attn``'s in-projection
(after ``norm1`` for pre-norm layers). Token positions assume a square grid of patches.

ERF radius per block (issue 15: how *global* each layer is, beside how
abstract): ``layer_erf_radii`` takes the centre unit of each block's spatial
output and returns ``ERF_RADIUS_STDS`` x the root second moment (px) of its
mean squared input-gradient map E[g^2] (the erf probe's ``erf_std_px``; Luo et
al. 2016 find the ERF Gaussian, whose 2-sigma disc holds 86% of the mass).
Token or vector outputs have no spatial unit: None (mean attention distance
covers attention layers).

Example::

    >>> feats = collect_features(model, images)                 # {block: (N, C)}
    >>> curve = probe_curve(feats, labels, types, split=0.5)    # per-block records
    >>> abstraction_depth([c["selectivity"] for c in curve])
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

ERF_RADIUS_STDS = 2.0  # the ERF radius is this many ERF standard deviations
RIDGE = 1e-2  # relative ridge on standardised features: stable with more channels than samples
_BLOCK_TYPES = ("ConvBNReLU", "TransformerEncoderLayer", "GlobalContext", "NonLocalBlock", "Linear")


def _trunk(model: nn.Module) -> nn.Module:
    return getattr(model, "trunk", model)


def block_names(model: nn.Module) -> list[str]:
    """Names (relative to the model) of the outermost blocks of its trunk, in definition order."""
    prefix = "trunk." if hasattr(model, "trunk") else ""
    chosen: list[str] = []
    for name, mod in _trunk(model).named_modules():
        inside = any(name.startswith(c + ".") for c in chosen)
        if name and not inside and (isinstance(mod, nn.TransformerEncoderLayer) or type(mod).__name__ in _BLOCK_TYPES):
            chosen.append(name)
    if not chosen:
        chosen = [n for n, m in _trunk(model).named_modules() if isinstance(m, nn.Conv2d)]
    return [prefix + n for n in chosen]


def _pool(out: torch.Tensor | tuple) -> torch.Tensor:
    """Global average of a block output: (B, C, h, w) -> (B, C); (B, T, D) -> (B, D); (B, N) kept."""
    out = out[0] if isinstance(out, tuple) else out
    if out.dim() == 4:
        return out.mean((-2, -1))
    return out.mean(1) if out.dim() == 3 else out.flatten(1)


@torch.no_grad()
def collect_features(model: nn.Module, inputs: torch.Tensor, layers: list[str] | None = None,
                     batch_size: int = 256) -> dict[str, torch.Tensor]:
    """Globally pooled output of each block for ``inputs`` (N, C, H, W): {name: (N, C_l)} on the CPU.

    ``layers`` defaults to ``block_names(model)``. The model runs in eval mode
    (BatchNorm uses its running statistics); its training flag is restored.
    """
    names = block_names(model) if layers is None else list(layers)
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        raise ValueError(f"unknown layer(s) {missing}; available blocks: {block_names(model)}")
    store: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    hooks = [modules[n].register_forward_hook(lambda m, i, o, n=n: store[n].append(_pool(o).float().cpu()))
             for n in names]
    was_training = model.training
    model.eval()
    try:
        for chunk in inputs.split(batch_size):
            model(chunk)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return {n: torch.cat(v) for n, v in store.items()}


def _output_ranks(model: nn.Module, x: torch.Tensor, names: list[str]) -> dict[str, int]:
    """The number of dimensions of each named module's output for one forward of ``x``."""
    modules, ranks = dict(model.named_modules()), {}

    def keep(name: str, out: torch.Tensor | tuple) -> None:  # a hook returning a value would replace the output
        ranks.setdefault(name, (out[0] if isinstance(out, tuple) else out).dim())

    hooks = [modules[n].register_forward_hook(lambda m, i, o, n=n: keep(n, o)) for n in names]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return ranks


def layer_erf_radii(model: nn.Module, inputs: torch.Tensor, layers: list[str] | None = None,
                    batch_size: int = 32, seed: int = 0) -> dict[str, float | None]:
    """ERF radius in px (``ERF_RADIUS_STDS`` x the ERF std) of each block's centre unit over ``inputs``.

    None for a block whose output is not a (B, C, h, w) map. The caller's train/eval flags are kept.
    """
    from fcnprobe.analysis.erf import map_metrics
    from fcnprobe.measure.erf import UnitModule, gradient_maps
    from fcnprobe.measure.outputs import preserved_mode

    names = block_names(model) if layers is None else list(layers)
    with preserved_mode(model):
        ranks = _output_ranks(model.eval(), inputs[:1], names)
        out: dict[str, float | None] = {}
        for name in names:
            if ranks.get(name) != 4:
                out[name] = None
                continue
            signs = torch.Generator().manual_seed(seed)  # the same sign draw for every block
            m_abs, m_sq, _ = gradient_maps(UnitModule(model, layer=name), inputs, batch_size, signs)
            out[name] = ERF_RADIUS_STDS * float(map_metrics(m_abs, m_sq, None)["erf_std_px"])
    return out


def _standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu, sd = train.mean(0), train.std(0) + 1e-6
    return (train - mu) / sd, (test - mu) / sd


def linear_probe_accuracy(train_feats: torch.Tensor | np.ndarray, train_y: torch.Tensor | np.ndarray,
                          test_feats: torch.Tensor | np.ndarray, test_y: torch.Tensor | np.ndarray,
                          ridge: float = RIDGE) -> float:
    """Test accuracy of a closed-form ridge classifier (one-hot targets, argmax) on standardised features.

    Deterministic (float64 normal equations, no iterations); ``ridge`` is
    relative to the mean feature variance, which standardisation makes 1.
    """
    xtr, xte = _standardise(np.asarray(train_feats, np.float64), np.asarray(test_feats, np.float64))
    ytr, yte = np.asarray(train_y).astype(int).ravel(), np.asarray(test_y).astype(int).ravel()
    k = int(max(ytr.max(), yte.max())) + 1
    xtr, xte = np.hstack([xtr, np.ones((len(xtr), 1))]), np.hstack([xte, np.ones((len(xte), 1))])
    targets = np.eye(k)[ytr]  # (N, K)
    gram = xtr.T @ xtr + ridge * len(xtr) * np.eye(xtr.shape[1])
    w = np.linalg.solve(gram, xtr.T @ targets)  # (C+1, K)
    return float(((xte @ w).argmax(1) == yte).mean())


def control_labels(types: torch.Tensor | np.ndarray, classes: int, seed: int = 0) -> np.ndarray:
    """Hewitt & Liang control task: each distinct input type gets one random class, consistently.

    The classes are dealt out evenly over the types (a shuffled ``0, 1, ..,
    classes - 1, 0, ..``), so the control gains little from class imbalance.
    """
    t = np.asarray(types).ravel()
    uniq, inverse = np.unique(t, return_inverse=True)
    table = np.random.default_rng(seed).permutation(np.arange(len(uniq)) % classes)
    return table[inverse]


def probe_curve(feats: dict[str, torch.Tensor], labels: torch.Tensor | np.ndarray,
                types: torch.Tensor | np.ndarray | None = None, split: float = 0.5,
                seed: int = 0) -> list[dict[str, float | str | None]]:
    """Per block: probe accuracy, shuffled-label floor, control accuracy and selectivity.

    The first ``split`` of the samples trains each probe, the rest tests it.
    Without ``types`` the control is the shuffled floor (selectivity vs. floor).
    Rows hold ``layer``, ``accuracy``, ``shuffled_accuracy``,
    ``control_accuracy`` and ``selectivity`` (fractions of the test samples).
    """
    y = np.asarray(labels).astype(int).ravel()
    cut, k = int(len(y) * split), int(y.max()) + 1
    y_shuf = np.random.default_rng(seed).permutation(y)  # train and test: no input-label link left
    y_ctrl = None if types is None else control_labels(types, k, seed)
    rows = []
    for name, f in feats.items():
        x = f.numpy() if isinstance(f, torch.Tensor) else np.asarray(f)
        acc = linear_probe_accuracy(x[:cut], y[:cut], x[cut:], y[cut:])
        floor = linear_probe_accuracy(x[:cut], y_shuf[:cut], x[cut:], y_shuf[cut:])
        ctrl = floor if y_ctrl is None else linear_probe_accuracy(x[:cut], y_ctrl[:cut], x[cut:], y_ctrl[cut:])
        rows.append({"layer": name, "accuracy": acc, "shuffled_accuracy": floor,
                     "control_accuracy": ctrl, "selectivity": acc - ctrl})
    return rows


def abstraction_depth(curve: list[float], fraction: float = 0.9) -> int | None:
    """Index of the first layer reaching ``fraction`` of the best layer's value; None if the best is <= 0."""
    best = max(curve, default=0.0)
    if best <= 0:
        return None
    return next(i for i, v in enumerate(curve) if v >= fraction * best)


def token_distances(grid: int, patch: float = 1.0) -> torch.Tensor:
    """(T, T) Euclidean distance in pixels between the centres of a grid x grid token map."""
    ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    pos = torch.stack([ys.flatten(), xs.flatten()], 1).double() * patch  # (T, 2)
    return torch.cdist(pos, pos)


def attention_weights(layer: nn.TransformerEncoderLayer, x: torch.Tensor,
                      mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B, heads, T, T) softmax attention of a batch-first encoder layer for its input x (B, T, D);
    ``mask`` is the layer's float ``src_mask``, (T, T) or (B * heads, T, T), added to the logits."""
    attn = layer.self_attn
    h = layer.norm1(x) if layer.norm_first else x
    d, heads = attn.embed_dim, attn.num_heads
    w, b = attn.in_proj_weight, attn.in_proj_bias
    q = nn.functional.linear(h, w[:d], None if b is None else b[:d])  # (B, T, D)
    k = nn.functional.linear(h, w[d:2 * d], None if b is None else b[d:2 * d])
    q = q.unflatten(-1, (heads, d // heads)).transpose(1, 2)  # (B, nh, T, hs)
    k = k.unflatten(-1, (heads, d // heads)).transpose(1, 2)
    logits = q @ k.transpose(-2, -1) / math.sqrt(d // heads)  # (B, nh, T, T)
    if mask is not None:
        logits = logits + (mask if mask.dim() == 2 else mask.view(x.shape[0], heads, *mask.shape[-2:]))
    return torch.softmax(logits, dim=-1)


def mean_attention_distance_of(weights: torch.Tensor, patch: float = 1.0) -> float:
    """Mean attention distance in pixels of weights (..., T, T) over a square token grid."""
    t = weights.shape[-1]
    grid = math.isqrt(t)
    if grid * grid != t:
        raise ValueError(f"{t} tokens do not form a square grid")
    dist = token_distances(grid, patch).to(weights)  # (T, T)
    return float((weights * dist).sum(-1).mean())


@torch.no_grad()
def mean_attention_distance(model: nn.Module, inputs: torch.Tensor) -> dict[str, float]:
    """Mean attention distance in pixels per ``nn.TransformerEncoderLayer`` of ``model``; {} if it has none.

    The patch size (pixels per token side) is the input side over the token grid side.
    """
    layers = {n: m for n, m in model.named_modules() if isinstance(m, nn.TransformerEncoderLayer)}
    seen: dict[str, torch.Tensor] = {}

    def hook(mod: nn.Module, args: tuple, kwargs: dict, n: str) -> None:
        seen[n] = attention_weights(mod, args[0], kwargs.get("src_mask", args[1] if len(args) > 1 else None))

    hooks = [m.register_forward_pre_hook(lambda mod, args, kw, n=n: hook(mod, args, kw, n), with_kwargs=True)
             for n, m in layers.items()]
    was_training = model.training
    model.eval()
    try:
        model(inputs)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    out = {}
    for n, w in seen.items():
        patch = inputs.shape[-1] / math.isqrt(w.shape[-1])
        out[n] = mean_attention_distance_of(w, patch)
    return out

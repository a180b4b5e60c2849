"""An independent NumPy reference for the metrics, written for clarity, not speed: loops
over images, a stable argsort for rankings, its own softmax, sigmoid and calibration bins,
scikit-learn's precision-recall-curve recipe for average precision. It imports nothing
from the package. Shared by the metric and head tests."""

from __future__ import annotations

import math

import numpy as np

GROUPS = ("1", "2", "3", "4+")


def close(a: float, b: float, rel: float = 1e-9) -> bool:
    """``a`` and ``b`` equal up to ``rel`` (and 1e-9 absolute), NaN equal to NaN."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)


def ranking(logits: np.ndarray) -> np.ndarray:
    """Class indices best first; ties: lower index first."""
    return np.argsort(-logits, axis=1, kind="stable")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over each row, float64."""
    z = np.exp(logits.astype(np.float64) - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Logistic function of each entry, float64."""
    return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))


def average_precision(y: np.ndarray, s: np.ndarray) -> float:
    """scikit-learn's average_precision_score for one column: one threshold per distinct
    score, AP = sum over thresholds of (recall step) x precision."""
    if y.sum() == 0:
        return float("nan")
    desc = np.argsort(s, kind="mergesort")[::-1]
    s, y = s[desc], y[desc].astype(float)
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y)[last_of_tie]
    fps = last_of_tie + 1 - tps
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    steps = np.diff(np.r_[0.0, recall])
    return float(np.sum(steps * precision))


def pct(values) -> float:
    values = np.asarray(values, dtype=float)
    return float("nan") if values.size == 0 else 100.0 * values.mean()


def ece(conf: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> float:
    """Expected calibration error in percent: bins [b/n, (b+1)/n), and 1.0 a bin of its
    own (torchmetrics' bins)."""
    if conf.size == 0:
        return float("nan")
    total = 0.0
    for b in range(n_bins + 1):
        lo, hi = b / n_bins, (b + 1) / n_bins
        sel = (conf >= lo) & (conf < hi) if b < n_bins else conf == 1.0
        if sel.any():
            total += abs(correct[sel].mean() - conf[sel].mean()) * sel.sum()
    return 100.0 * total / conf.size


def single_label(logits: np.ndarray, target: np.ndarray, n_bins: int = 15) -> dict[str, float]:
    """top1, top3, top5, nll (mean -log softmax of the target) and ece against the original
    label."""
    order = ranking(logits)
    p = softmax(logits)
    rows = np.arange(len(target))
    hit1 = order[:, 0] == target
    return {
        "top1": pct(hit1),
        "top3": pct([target[i] in order[i, :3] for i in rows]),
        "top5": pct([target[i] in order[i, :5] for i in rows]),
        "nll": float(-np.log(p[rows, target]).mean()) if len(target) else float("nan"),
        "ece": ece(p.max(axis=1), hit1.astype(float), n_bins),
    }


def multilabel(
    logits: np.ndarray,
    target: np.ndarray,
    valid: np.ndarray,
    scores: str = "softmax",
    mode: str = "vartopk",
    k: int = 1,
    threshold: float = 0.5,
    mass: float = 0.9,
    min_subgroup_size: int = 1,
    confidences=(0.5, 0.8),
    n_bins: int = 15,
) -> dict[str, float]:
    """Every multi-label metric, with ``scores`` ``softmax`` or ``sigmoid`` of ``logits``."""
    n, c = logits.shape
    order = ranking(logits)
    prob = {"softmax": softmax, "sigmoid": sigmoid}[scores](logits)
    sets = [set(np.flatnonzero(v)) for v in valid]
    lab = [i for i in range(n) if sets[i]]
    out = {"num_images": n, "num_labeled": len(lab), "num_unlabeled": n - len(lab)}
    out["real_top1"] = pct([order[i, 0] in sets[i] for i in lab])
    out["real_top5"] = pct([bool(set(order[i, :5]) & sets[i]) for i in lab])
    strict = {i: set(order[i, : len(sets[i])]) == sets[i] for i in lab}
    out["vartopk_strict"] = pct([strict[i] for i in lab])
    out["vartopk_partial"] = pct(
        [len(set(order[i, : len(sets[i])]) & sets[i]) / len(sets[i]) for i in lab]
    )
    accs = []
    for g in GROUPS:
        members = [i for i in lab if (len(sets[i]) >= 4 if g == "4+" else len(sets[i]) == int(g))]
        out[f"num_images@labels={g}"] = len(members)
        out[f"top1@labels={g}"] = pct([order[i, 0] == target[i] for i in members])
        out[f"real_top1@labels={g}"] = pct([order[i, 0] in sets[i] for i in members])
        out[f"vartopk_strict@labels={g}"] = pct([strict[i] for i in members])
        if len(members) >= max(1, min_subgroup_size):
            accs.append(out[f"vartopk_strict@labels={g}"])
    out["asma"] = float(np.mean(accs)) if accs else float("nan")
    aps = [average_precision(valid[lab, j], prob[lab, j]) for j in range(c)]
    aps = [a for a in aps if not np.isnan(a)]
    out["map_macro"] = 100.0 * float(np.mean(aps)) if aps else float("nan")
    out["map_micro"] = (
        100.0 * average_precision(valid[lab].ravel(), prob[lab].ravel()) if lab else np.nan
    )
    tp = fp = fn = exact = 0
    for i in lab:
        if mode == "vartopk":
            pred = set(order[i, : len(sets[i])])
        elif mode == "topk":
            pred = set(order[i, :k])
        elif mode == "threshold":
            pred = set(np.flatnonzero(prob[i] >= threshold))
        else:
            pred, total = set(), 0.0
            for j in order[i]:
                pred.add(j)
                total += prob[i, j]
                if total >= mass:
                    break
        tp += len(pred & sets[i])
        fp += len(pred - sets[i])
        fn += len(sets[i] - pred)
        exact += pred == sets[i]
    out["precision"] = 100.0 * tp / (tp + fp) if tp + fp else float("nan")
    out["recall"] = 100.0 * tp / (tp + fn) if tp + fn else float("nan")
    out["f1"] = 100.0 * 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    out["subset_accuracy"] = 100.0 * exact / len(lab) if lab else float("nan")
    out["hamming_loss"] = 100.0 * (fp + fn) / (len(lab) * c) if lab else float("nan")
    conf = np.array([prob[i, order[i, 0]] for i in lab])
    hit = np.array([order[i, 0] in sets[i] for i in lab], dtype=float)
    wrong = np.array([order[i, 0] != target[i] for i in lab], dtype=bool)
    for t in confidences:
        sel = wrong & (conf >= t) if lab else np.zeros(0, bool)
        out[f"confident_errors_valid@p>={t:g}"] = pct(hit[sel]) if lab else float("nan")
    out["ece_multilabel"] = ece(conf, hit, n_bins)
    return {key: float(value) for key, value in out.items()}

"""An independent NumPy reference for the metrics, written for clarity, not speed: loops
over images, a stable argsort for rankings, scikit-learn's precision-recall-curve recipe
for average precision. Shared by the metric and head tests."""

from __future__ import annotations

import numpy as np

GROUPS = ("1", "2", "3", "4+")


def ranking(logits: np.ndarray) -> np.ndarray:
    """Class indices best first; ties: lower index first."""
    return np.argsort(-logits, axis=1, kind="stable")


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
    if conf.size == 0:
        return float("nan")
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        sel = (conf > lo) & (conf <= hi) if b else (conf <= hi)
        if sel.any():
            total += abs(correct[sel].mean() - conf[sel].mean()) * sel.sum()
    return 100.0 * total / conf.size


def multilabel(
    logits: np.ndarray,
    target: np.ndarray,
    valid: np.ndarray,
    scores: np.ndarray,
    mode: str = "vartopk",
    k: int = 1,
    threshold: float = 0.5,
    mass: float = 0.9,
    min_subgroup_size: int = 1,
    confidences=(0.5, 0.8),
) -> dict[str, float]:
    n, c = logits.shape
    order = ranking(logits)
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
    aps = [average_precision(valid[lab, j], scores[lab, j]) for j in range(c)]
    aps = [a for a in aps if not np.isnan(a)]
    out["map_macro"] = 100.0 * float(np.mean(aps)) if aps else float("nan")
    out["map_micro"] = (
        100.0 * average_precision(valid[lab].ravel(), scores[lab].ravel()) if lab else np.nan
    )
    tp = fp = fn = exact = 0
    for i in lab:
        if mode == "vartopk":
            pred = set(order[i, : len(sets[i])])
        elif mode == "topk":
            pred = set(order[i, :k])
        elif mode == "threshold":
            pred = set(np.flatnonzero(scores[i] >= threshold))
        else:
            pred, total = set(), 0.0
            for j in order[i]:
                pred.add(j)
                total += scores[i, j]
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
    conf = np.array([scores[i, order[i, 0]] for i in lab])
    hit = np.array([order[i, 0] in sets[i] for i in lab], dtype=float)
    wrong = np.array([order[i, 0] != target[i] for i in lab], dtype=bool)
    for t in confidences:
        sel = wrong & (conf >= t) if lab else np.zeros(0, bool)
        out[f"confident_errors_valid@p>={t:g}"] = pct(hit[sel]) if lab else float("nan")
    out["ece_multilabel"] = ece(conf, hit)
    return {key: float(value) for key, value in out.items()}

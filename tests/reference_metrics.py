"""Slow, obviously-correct references: one image at a time, plain Python loops over pixels.

Attention is given at the mask's size (the batched metrics upsample first; see the tests).
"""

from __future__ import annotations

import math

import numpy as np
import torch


def _pixels(a):
    h, w = a.shape
    return [(i, j) for i in range(h) for j in range(w)]


def _order(a):
    """Pixels from most to least attended, ties by row-major position."""
    px = _pixels(a)
    return sorted(px, key=lambda p: (-a[p], p[0] * a.shape[1] + p[1]))


def energy(a, m):
    pos = np.maximum(a, 0)
    if m.sum() == 0 or pos.sum() == 0:
        return None
    return sum(pos[p] for p in _pixels(a) if m[p]) / pos.sum()


def mass(a, m):
    if m.sum() == 0 or a.sum() == 0:
        return None
    return sum(a[p] for p in _pixels(a) if m[p]) / a.sum()


def rank(a, m):
    k = int(m.sum())
    if k == 0:
        return None
    return sum(1 for p in _order(a)[:k] if m[p]) / k


def top_k(a, m, k):
    if m.sum() == 0:
        return None
    return sum(1 for p in _order(a)[:k] if m[p]) / k


def pointing(a, m, tolerance=0):
    if m.sum() == 0 or a.max() == a.min():
        return None
    inside = [q for q in _pixels(a) if m[q]]
    for p in _pixels(a):
        if a[p] == a.max() and any(math.dist(p, q) <= tolerance for q in inside):
            return 1.0
    return 0.0


def iou(a, m, threshold=0.5):
    if m.sum() == 0 or a.max() == a.min():
        return None
    inter = union = 0
    for p in _pixels(a):
        t = (a[p] - a.min()) / (a.max() - a.min()) >= threshold
        inter += bool(t and m[p])
        union += bool(t or m[p])
    return inter / union


def auc(a, m):
    pos = [a[p] for p in _pixels(a) if m[p]]
    neg = [a[p] for p in _pixels(a) if not m[p]]
    if not pos or not neg:
        return None
    score = sum(1.0 if u > v else 0.5 if u == v else 0.0 for u in pos for v in neg)
    return score / (len(pos) * len(neg))


def deletion_curve(model, x, a, target, steps, mode="deletion", fill=0.0):
    """x: (C, H, W); a: (H, W) numpy at input size; probability of target per step."""
    order = _order(a)
    n = len(order)
    probs = []
    for i in range(steps + 1):
        count = round(i / steps * n)
        chosen = set(order[:count])
        img = x.clone() if mode == "deletion" else torch.full_like(x, fill)
        for (r, c) in chosen:
            img[:, r, c] = fill if mode == "deletion" else x[:, r, c]
        with torch.no_grad():
            probs.append(torch.softmax(model(img[None]), 1)[0, target].item())
    return probs


def linear_impute(x, removed):
    """Dense solve of the ROAD system for one channel image x (H, W), removed (H, W) bool."""
    h, w = x.shape
    unknown = [p for p in _pixels(x) if removed[p]]
    index = {p: i for i, p in enumerate(unknown)}
    a = np.zeros((len(unknown), len(unknown)))
    b = np.zeros(len(unknown))
    for p, i in index.items():
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                if dr == dc == 0:
                    continue
                q = (p[0] + dr, p[1] + dc)
                if not (0 <= q[0] < h and 0 <= q[1] < w):
                    continue
                wgt = 1 / 6 if dr == 0 or dc == 0 else 1 / 12
                a[i, i] += wgt
                if q in index:
                    a[i, index[q]] -= wgt
                else:
                    b[i] += wgt * x[q]
    out = x.copy()
    sol = np.linalg.solve(a, b)
    for p, i in index.items():
        out[p] = sol[i]
    return out

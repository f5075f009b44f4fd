"""Top-N maximum inner product search for multi-interest retrievers.

A user is ``K`` interest vectors (some masked); an item's score is its largest dot
product with a valid interest (MIND's serving rule). :class:`BruteForceIndex` is exact
and needs nothing but numpy; :class:`FaissIndex` (``pip install "sklattn[ann]"``)
is an approximate inverted-file index for catalogues of millions of items. Both
return item *positions* (rows of the item matrix), best first, and ``-1`` (score
``-inf``) only where fewer than ``top_n`` items remain: ``top_n`` larger than the
catalogue, or more items excluded than the catalogue can spare. A caller that asks
for at most ``n_items - m`` items with ``m`` exclusions per row always gets full rows
(:class:`~sklattn.MINDRetriever` does).
"""

from __future__ import annotations

from numbers import Integral

import numpy as np

__all__ = ["BruteForceIndex", "FaissIndex", "check_top_n", "make_index"]


def check_top_n(top_n, name: str = "top_n") -> int:
    """Check a number of items to return.

    Booleans, floats (even integral ones) and strings are refused: ``2.5`` or ``"3"``
    items is a mistake, not a request to round.

    Parameters
    ----------
    top_n : object
        The value to check.
    name : str, default="top_n"
        The name the error message gives it.

    Returns
    -------
    int
        ``top_n`` as a Python int.

    Raises
    ------
    ValueError
        When ``top_n`` is not an integer >= 1.
    """
    if isinstance(top_n, bool) or not isinstance(top_n, Integral) or top_n < 1:
        raise ValueError(f"{name} must be a positive integer (an int >= 1); got {top_n!r}.")
    return int(top_n)


def _merge_rows(best_s, best_i, rows, scores, items, top_n):
    """Keep, per row, the ``top_n`` highest of the current best and the new candidates."""
    n_rows = best_s.shape[0]
    all_rows = np.concatenate([np.repeat(np.arange(n_rows), best_s.shape[1]), rows])
    all_s = np.concatenate([best_s.ravel(), scores])
    all_i = np.concatenate([best_i.ravel(), items])
    order = np.lexsort((-all_s, all_rows))
    all_rows, all_s, all_i = all_rows[order], all_s[order], all_i[order]
    starts = np.searchsorted(all_rows, np.arange(n_rows))
    keep = (np.arange(len(all_rows)) - starts[all_rows]) < top_n
    return all_s[keep].reshape(n_rows, top_n), all_i[keep].reshape(n_rows, top_n)


class BruteForceIndex:
    """Exact search: every item is scored, in blocks that stay in the CPU cache.

    Users are processed ``user_block`` at a time and items ``item_chunk`` at a time;
    per chunk only the scores above each user's current ``top_n``-th best are kept
    (after the first chunks that is almost none), so the cost is dominated by the
    matrix products.
    """

    def __init__(self, items: np.ndarray, user_block: int = 64, item_chunk: int = 16384):
        self.items = np.ascontiguousarray(items, dtype=np.float32)
        self.user_block = int(user_block)
        self.item_chunk = int(item_chunk)

    def search(self, interests, mask, top_n: int, exclude=None):
        """Top items of each user.

        Parameters
        ----------
        interests : ndarray of shape (n_users, K, dim)
        mask : ndarray of shape (n_users, K), bool
            Valid interests.
        top_n : int
            Items per user (>= 1).
        exclude : ndarray of shape (n_users, m), default=None
            Item positions never to return (``-1`` = nothing).

        Returns
        -------
        positions : ndarray of shape (n_users, top_n), int64
            Best first; ``-1`` where fewer than ``top_n`` items remain.
        scores : ndarray of shape (n_users, top_n), float32
            ``-inf`` where the position is ``-1``.
        """
        top_n = check_top_n(top_n)
        n_users, k, dim = interests.shape
        n_items = len(self.items)
        pos = np.full((n_users, top_n), -1, dtype=np.int64)
        out = np.full((n_users, top_n), -np.inf, dtype=np.float32)
        for r0 in range(0, n_users, self.user_block):
            r1 = min(r0 + self.user_block, n_users)
            rb = r1 - r0
            queries = np.ascontiguousarray(interests[r0:r1], dtype=np.float32).reshape(-1, dim)
            invalid = ~np.asarray(mask[r0:r1], dtype=bool)
            best_s = np.full((rb, top_n), -np.inf, dtype=np.float32)
            best_i = np.full((rb, top_n), -1, dtype=np.int64)
            ex = None if exclude is None else np.asarray(exclude[r0:r1])
            for c0 in range(0, n_items, self.item_chunk):
                c1 = min(c0 + self.item_chunk, n_items)
                scores = (queries @ self.items[c0:c1].T).reshape(rb, k, c1 - c0)
                scores[invalid] = -np.inf
                scores = scores.max(axis=1)
                if ex is not None:
                    er, ec = np.nonzero((ex >= c0) & (ex < c1))
                    scores[er, ex[er, ec] - c0] = -np.inf
                above = scores > best_s[:, -1:]
                n_above = int(above.sum())
                if n_above == 0:
                    continue
                if n_above > 4 * rb * top_n and scores.shape[1] > top_n:
                    cols = np.argpartition(-scores, top_n - 1, axis=1)[:, :top_n]
                    rows = np.repeat(np.arange(rb), top_n)
                    cols = cols.ravel()
                else:
                    rows, cols = np.nonzero(above)
                cand = scores[rows, cols]
                finite = np.isfinite(cand)
                best_s, best_i = _merge_rows(
                    best_s, best_i, rows[finite], cand[finite], cols[finite] + c0, top_n
                )
            pos[r0:r1], out[r0:r1] = best_i, best_s
        return pos, out


class FaissIndex:
    """Approximate search with a faiss inverted-file index (inner product).

    The items are clustered into ``nlist`` lists (k-means; default ``sqrt(n_items)``);
    a query scans the ``nprobe`` lists (default 32) whose centroids score highest.
    More lists probed: higher recall of the exact top-N, slower queries. Each valid
    interest retrieves ``top_n`` plus the number of excluded items; the per-user
    results are merged by each item's best score. A user whose probed lists hold too
    few items for ``top_n`` results is searched again over every list (exactly), so a
    row comes back short only where the catalogue itself is too small.
    """

    def __init__(self, items: np.ndarray, nlist: int | None = None, nprobe: int = 32,
                 seed: int = 0):
        try:
            import faiss
        except ImportError as exc:  # pragma: no cover - depends on the extra
            raise ImportError(
                'index="faiss" needs the faiss package: pip install "sklattn[ann]" '
                "(faiss-cpu)."
            ) from exc
        items = np.ascontiguousarray(items, dtype=np.float32)
        n, dim = items.shape
        if nlist is None:
            nlist = int(np.sqrt(n))
        nlist = int(max(1, min(nlist, n // 39 or 1)))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = int(seed)
        index.train(items)
        index.add(items)
        index.nprobe = int(min(nprobe, nlist))
        self.index, self.nlist, self.nprobe, self.n_items = index, nlist, index.nprobe, n
        self._quantizer = quantizer  # faiss does not own it

    def search(self, interests, mask, top_n: int, exclude=None):
        """Same contract as :meth:`BruteForceIndex.search`."""
        top_n = check_top_n(top_n)
        interests = np.asarray(interests)
        mask = np.asarray(mask, dtype=bool)
        exclude = None if exclude is None else np.asarray(exclude)
        pos, out = self._search(interests, mask, top_n, exclude, self.nprobe)
        short = (pos < 0).any(axis=1)
        if short.any() and self.nprobe < self.nlist:
            # The probed lists held too few items for these rows: probe every list.
            pos[short], out[short] = self._search(
                interests[short], mask[short], top_n,
                None if exclude is None else exclude[short], self.nlist,
            )
        return pos, out

    def _search(self, interests, mask, top_n, exclude, nprobe):
        import faiss

        n_users, k, dim = interests.shape
        extra = 0 if exclude is None else int((exclude >= 0).sum(axis=1).max(initial=0))
        want = min(top_n + extra, self.n_items)
        queries = np.ascontiguousarray(interests, dtype=np.float32).reshape(-1, dim)
        scores, items = self.index.search(
            queries, want, params=faiss.SearchParametersIVF(nprobe=int(nprobe))
        )
        scores = scores.reshape(n_users, k * want)
        items = items.reshape(n_users, k * want)
        scores[np.repeat(~mask, want, axis=1) | (items < 0)] = -np.inf
        if exclude is not None:
            ex = exclude
            seen = (items[:, :, None] == ex[:, None, :]).any(axis=2)
            scores[seen] = -np.inf
        # An item found by several interests keeps its best score.
        order = np.lexsort((-scores, items), axis=-1)
        items = np.take_along_axis(items, order, axis=1)
        scores = np.take_along_axis(scores, order, axis=1)
        scores[:, 1:][items[:, 1:] == items[:, :-1]] = -np.inf
        best = np.argsort(-scores, axis=1, kind="stable")[:, :top_n]
        pos = np.take_along_axis(items, best, axis=1)
        out = np.take_along_axis(scores, best, axis=1).astype(np.float32)
        pos[~np.isfinite(out)] = -1
        if pos.shape[1] < top_n:
            pad = top_n - pos.shape[1]
            pos = np.pad(pos, ((0, 0), (0, pad)), constant_values=-1)
            out = np.pad(out, ((0, 0), (0, pad)), constant_values=-np.inf)
        return pos.astype(np.int64), out


def make_index(kind: str, items: np.ndarray, options: dict | None, seed: int = 0):
    """Build the index named by a retriever's ``index`` parameter."""
    options = dict(options or {})
    if kind == "brute":
        return BruteForceIndex(items, **options)
    if kind == "faiss":
        return FaissIndex(items, seed=seed, **options)
    raise ValueError(f"Unknown index {kind!r}; expected 'brute' or 'faiss'.")

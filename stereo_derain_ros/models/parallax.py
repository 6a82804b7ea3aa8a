"""Row-wise (epipolar) cross-view attention for rectified stereo, optionally disparity-banded.

Conventions: the left camera is on the left, so a scene point at left column i appears at right
column j = i - d with disparity d >= 0. A left-view query at column i therefore attends right-view
keys j in [i - D, i]; a right-view query at column j attends left-view keys i in [j, j + D].
D = None means the whole row on the allowed side (APANet's triangular mask).

Tensors here are rows: B x W x C with B = N * H (see `rows_from_image`). The banded path never
builds a W x W matrix: the row is cut into chunks of S query columns and each chunk meets only
the S + D key columns that can reach it, so cost and memory grow linearly with W.
"""

import torch
import torch.nn.functional as F

VIEWS = ('left', 'right')


def rows_from_image(image: torch.Tensor) -> torch.Tensor:
    """Turn N x C x H x W features into (N * H) x W x C epipolar rows."""
    n, c, h, w = image.shape
    return image.permute(0, 2, 3, 1).reshape(n * h, w, c)


def image_from_rows(rows: torch.Tensor, batch: int) -> torch.Tensor:
    """Invert `rows_from_image` for a batch of `batch` images."""
    b, w, c = rows.shape
    return rows.reshape(batch, b // batch, w, c).permute(0, 3, 1, 2)


def _check(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, view: str,
           max_disparity: int | None) -> None:
    if view not in VIEWS:
        raise ValueError(f'view must be one of {VIEWS}, got {view!r}')
    if query.dim() != 3 or key.shape != query.shape or value.shape[:2] != key.shape[:2]:
        raise ValueError('expected query and key B x W x C and value B x W x Cv, got '
                         f'{tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}')
    if max_disparity is not None and max_disparity < 0:
        raise ValueError(f'max_disparity must be >= 0 or None, got {max_disparity}')


def band_mask(width: int, max_disparity: int | None, view: str,
              device: torch.device | None = None) -> torch.Tensor:
    """Return the W x W boolean mask of allowed (query column, key column) pairs."""
    columns = torch.arange(width, device=device)
    offset = columns[:, None] - columns[None, :]
    if view == 'right':
        offset = -offset
    allowed = offset >= 0
    if max_disparity is not None:
        allowed &= offset <= max_disparity
    return allowed


def _masked_softmax(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    # A finite fill keeps rows with no allowed key (padding only) free of NaNs in both passes.
    return torch.softmax(logits.masked_fill(~allowed, torch.finfo(logits.dtype).min), dim=-1)


def scale_queries(query: torch.Tensor) -> torch.Tensor:
    """Divide queries by sqrt(C) before the dot products, not the logits after them.

    In fp16 a C-term dot product of unscaled features can exceed 65504 and become inf before a
    later scaling could bring it back; scaling the factor first keeps the products in range.
    """
    return query * query.shape[-1] ** -0.5


def full_parallax_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                            view: str, max_disparity: int | None = None) -> torch.Tensor:
    """Attend along rows with an explicit W x W masked logit matrix (memory grows with W^2).

    The straightforward form: used for the unbanded case and as the reference for the banded one.
    """
    _check(query, key, value, view, max_disparity)
    logits = scale_queries(query) @ key.transpose(-1, -2)
    allowed = band_mask(query.shape[1], max_disparity, view, query.device)
    return _masked_softmax(logits, allowed) @ value


def default_chunk(max_disparity: int) -> int:
    """Pick the query chunk length S: small enough to waste little of each S + D key window.

    It does not depend on the row width, so an exported graph serves every width.
    """
    return max(16, min(64, max_disparity // 2))


def banded_parallax_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                              view: str, max_disparity: int,
                              chunk: int | None = None) -> torch.Tensor:
    """Attend along rows within a disparity band of D columns, in chunks (linear in W).

    Chunk c holds query columns [cS, cS + S). For the left view it needs keys [cS - D, cS + S),
    for the right view keys [cS, cS + S + D); both are windows of length S + D over the key row
    padded by D on the left or right side. In window coordinates both views share one mask:
    query a may see key b iff a <= b <= a + D (and b is a real column).
    """
    _check(query, key, value, view, max_disparity)
    batch, width, channels = query.shape
    span = chunk or default_chunk(max_disparity)
    n_chunks = (width + span - 1) // span  # not -(-w // s): ONNX divides integers toward 0
    tail = n_chunks * span - width
    pad = (max_disparity, tail) if view == 'left' else (0, tail + max_disparity)
    window = span + max_disparity

    def windows(rows: torch.Tensor) -> torch.Tensor:
        padded = F.pad(rows, (0, 0, *pad))
        return padded.unfold(1, window, span)  # B x n x C x (S + D)

    queries = F.pad(scale_queries(query), (0, 0, 0, tail)).reshape(batch, n_chunks, span, channels)
    logits = queries @ windows(key)  # B x n x S x (S + D)

    position = torch.arange(window, device=query.device)
    in_band = (position[None, :] >= torch.arange(span, device=query.device)[:, None]) & (
        position[None, :] <= torch.arange(span, device=query.device)[:, None] + max_disparity)
    real = torch.ones(width, dtype=torch.bool, device=query.device)
    real_key = F.pad(real, pad).unfold(0, window, span)  # n x (S + D)
    allowed = in_band[None, :, :] & real_key[:, None, :]

    attention = _masked_softmax(logits, allowed)
    out = attention @ windows(value).transpose(-1, -2)  # B x n x S x Cv
    return out.reshape(batch, n_chunks * span, -1)[:, :width]


def parallax_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, view: str,
                       max_disparity: int | None = None) -> torch.Tensor:
    """Attend from `view`'s queries to the other view's keys/values within the disparity band.

    Uses the banded chunked form whenever a band is set, even one wider than the row (where it
    equals the full form), so that one exported graph serves every width.
    """
    if max_disparity is None:
        return full_parallax_attention(query, key, value, view)
    return banded_parallax_attention(query, key, value, view, max_disparity)


def parallax_attention_pair(query_left: torch.Tensor, query_right: torch.Tensor,
                            value_left: torch.Tensor, value_right: torch.Tensor,
                            max_disparity: int | None = None
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Exchange features both ways from one score S[i, j] = q_left[i] . q_right[j] / sqrt(C).

    Returns (right-to-left, left-to-right) features. SCAM/APAM-style: the left view reads
    softmax_j(S) v_right, the right view softmax_i(S^T) v_left. Unbanded, one W x W logit matrix
    serves both directions (as in APANet); banded, each direction computes its own band.
    """
    width = query_left.shape[1]
    if max_disparity is not None:
        return (banded_parallax_attention(query_left, query_right, value_right, 'left',
                                          max_disparity),
                banded_parallax_attention(query_right, query_left, value_left, 'right',
                                          max_disparity))
    _check(query_left, query_right, value_right, 'left', max_disparity)
    _check(query_right, query_left, value_left, 'right', max_disparity)
    logits = scale_queries(query_left) @ query_right.transpose(-1, -2)
    allowed = band_mask(width, None, 'left', query_left.device)
    to_left = _masked_softmax(logits, allowed) @ value_right
    to_right = _masked_softmax(logits.transpose(-1, -2), allowed.transpose(0, 1)) @ value_left
    return to_left, to_right

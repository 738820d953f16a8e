"""Independent float64 numpy implementations of the losses, written from the equations.

Deliberately naive: explicit Python loops over anchors / pairs and over the real words of each
caption (no masking tricks), so they share no code path with `xmcgan_tf.losses`.
"""

from __future__ import annotations

import numpy as np


def unit(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation along the last axis."""
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def log_sum_exp(values) -> float:
    """log Σ exp(v), stable."""
    values = np.asarray(values, np.float64)
    peak = values.max()
    return float(peak + np.log(np.sum(np.exp(values - peak))))


def hinge_discriminator(real: np.ndarray, fake: np.ndarray) -> float:
    """mean max(0, 1 − D(x)) + mean max(0, 1 + D(G(z)))."""
    real = np.asarray(real, np.float64)
    fake = np.asarray(fake, np.float64)
    return float(np.mean(np.maximum(0.0, 1.0 - real)) + np.mean(np.maximum(0.0, 1.0 + fake)))


def hinge_generator(fake: np.ndarray) -> float:
    """−mean D(G(z))."""
    return float(-np.mean(np.asarray(fake, np.float64)))


def symmetric_cross_entropy(logits: np.ndarray) -> float:
    """Row CE + column CE of a square logit matrix whose matches are on the diagonal."""
    logits = np.asarray(logits, np.float64)
    n = logits.shape[0]
    rows = [-(logits[i, i] - log_sum_exp(logits[i, :])) for i in range(n)]
    columns = [-(logits[i, i] - log_sum_exp(logits[:, i])) for i in range(n)]
    return float(np.mean(rows) + np.mean(columns))


def cosine_logits(a: np.ndarray, b: np.ndarray, temperature: float) -> np.ndarray:
    """[B, B] matrix cos(a_i, b_j) / τ."""
    a, b = unit(a), unit(b)
    return np.array([[a[i] @ b[j] / temperature for j in range(len(b))] for i in range(len(a))])


def symmetric_contrastive(a: np.ndarray, b: np.ndarray, temperature: float) -> float:
    """Symmetric InfoNCE with cosine / τ logits."""
    return symmetric_cross_entropy(cosine_logits(a, b, temperature))


def contrastive_with_bank(a: np.ndarray, b: np.ndarray, bank: np.ndarray, excluded: np.ndarray,
                          temperature: float) -> float:
    """Symmetric InfoNCE whose a→b rows also hold the bank's columns, excluded ones dropped:
    row n is −log exp(L_nn) / (Σ_m exp(L_nm) + Σ_{k not excluded} exp(L'_nk))."""
    logits = cosine_logits(a, b, temperature)  # [B, B]
    extra = cosine_logits(a, bank, temperature)  # [B, N]
    rows = []
    for n in range(len(a)):
        row = np.concatenate([logits[n], extra[n][~excluded[n]]])
        rows.append(log_sum_exp(row) - logits[n, n])
    columns = [log_sum_exp(logits[:, n]) - logits[n, n] for n in range(len(a))]
    return float(np.mean(rows) + np.mean(columns))


def row_accuracy(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of rows i whose most cosine-similar b is b_i."""
    logits = cosine_logits(a, b, 1.0)
    return float(np.mean([np.argmax(logits[i]) == i for i in range(len(logits))]))


def word_region_score(regions: np.ndarray, words: np.ndarray, num_words: int,
                      gamma1: float, gamma2: float) -> float:
    """S for one image ([R, D] regions) and one caption's first `num_words` words ([T, D])."""
    r_hat = unit(regions)
    terms = []
    for t in range(num_words):
        w = np.asarray(words[t], np.float64)
        w_hat = w / np.linalg.norm(w)
        attention_logits = np.array([gamma1 * (r_hat[k] @ w_hat) for k in range(len(r_hat))])
        alpha = np.exp(attention_logits - log_sum_exp(attention_logits))
        context = np.sum(alpha[:, None] * r_hat, axis=0)
        cosine = (w @ context) / (np.linalg.norm(w) * np.linalg.norm(context))
        terms.append(gamma2 * cosine)
    return log_sum_exp(terms) / gamma2


def word_region_similarity(regions: np.ndarray, words: np.ndarray, num_words,
                           gamma1: float, gamma2: float) -> np.ndarray:
    """[B, N] matrix of S(image b, caption i); caption i uses its first num_words[i] words."""
    return np.array([[word_region_score(regions[b], words[i], int(num_words[i]), gamma1, gamma2)
                      for i in range(len(words))] for b in range(len(regions))])


def word_contrastive(regions, words, num_words, gamma1, gamma2, gamma3) -> float:
    """Symmetric CE of γ3 · S."""
    return symmetric_cross_entropy(
        gamma3 * word_region_similarity(regions, words, num_words, gamma1, gamma2))


def nt_xent(a: np.ndarray, b: np.ndarray, temperature: float) -> float:
    """Mean over the 2N anchors of −log(exp(s_pos/τ) / Σ_{k≠i} exp(s_ik/τ))."""
    z = unit(np.concatenate([a, b], axis=0))
    n = len(a)
    losses = []
    for i in range(2 * n):
        positive = i + n if i < n else i - n
        others = [z[i] @ z[k] / temperature for k in range(2 * n) if k != i]
        losses.append(-(z[i] @ z[positive] / temperature - log_sum_exp(others)))
    return float(np.mean(losses))


def supcon(features: np.ndarray, labels, temperature: float) -> float:
    """SupCon L^sup_out averaged over anchors that have at least one positive (0 if none)."""
    z = unit(features)
    m = len(z)
    anchor_losses = []
    for a in range(m):
        positives = [p for p in range(m) if p != a and labels[p] == labels[a]]
        if not positives:
            continue
        denominator = log_sum_exp([z[a] @ z[k] / temperature for k in range(m) if k != a])
        anchor_losses.append(-np.mean([z[a] @ z[p] / temperature - denominator
                                       for p in positives]))
    return float(np.mean(anchor_losses)) if anchor_losses else 0.0


def _softmax(values) -> np.ndarray:
    values = np.asarray(values, np.float64)
    return np.exp(values - log_sum_exp(values))


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-8))


def attngan_word_region_score(regions: np.ndarray, words: np.ndarray, num_words: int,
                              gamma1: float, gamma2: float) -> float:
    """AttnGAN-code R for one image ([R, K] regions) and one caption's first `num_words` words.

    s_rt = v_r · e_t; per region r a softmax over the words; ×γ1; per word t a softmax over the
    regions gives α_t; c_t = Σ_r α_tr v_r; R = log Σ_t exp(γ2 cos(c_t, e_t)) (no 1/γ2).
    """
    v = np.asarray(regions, np.float64)
    e = np.asarray(words, np.float64)[:num_words]
    num_regions = len(v)
    dots = np.array([[v[r] @ e[t] for t in range(num_words)] for r in range(num_regions)])
    over_words = np.array([_softmax(dots[r, :]) for r in range(num_regions)])  # [R, n]
    terms = []
    for t in range(num_words):
        alpha = _softmax([gamma1 * over_words[r, t] for r in range(num_regions)])
        context = sum(alpha[r] * v[r] for r in range(num_regions))
        terms.append(gamma2 * _cosine(context, e[t]))
    return log_sum_exp(terms)


def attngan_word_region_similarity(regions, words, num_words, gamma1, gamma2) -> np.ndarray:
    """[B, N] matrix of the AttnGAN-code R(image b, caption i)."""
    return np.array([[attngan_word_region_score(regions[b], words[i], int(num_words[i]),
                                                gamma1, gamma2)
                      for i in range(len(words))] for b in range(len(regions))])


def masked_symmetric_cross_entropy(logits: np.ndarray, labels=None) -> float:
    """Row CE + column CE of square logits (matches on the diagonal) where an off-diagonal pair
    (i, j) with labels[i] == labels[j] >= 0 is left out of both softmax denominators."""
    logits = np.asarray(logits, np.float64)
    n = len(logits)

    def kept(i, j):
        return i == j or labels is None or labels[i] < 0 or labels[i] != labels[j]

    rows = [-(logits[i, i] - log_sum_exp([logits[i, j] for j in range(n) if kept(i, j)]))
            for i in range(n)]
    columns = [-(logits[i, i] - log_sum_exp([logits[j, i] for j in range(n) if kept(i, j)]))
               for i in range(n)]
    return float(np.mean(rows) + np.mean(columns))


def attngan_damsm_word(regions, words, num_words, labels=None, gamma1=4.0, gamma2=5.0,
                       gamma3=10.0) -> float:
    """AttnGAN-code DAMSM word loss: symmetric CE of γ3 · R, same-class negatives dropped."""
    return masked_symmetric_cross_entropy(
        gamma3 * attngan_word_region_similarity(regions, words, num_words, gamma1, gamma2),
        labels)


def damsm_sentence(image, sentence, labels=None, gamma3=10.0) -> float:
    """DAMSM sentence loss: symmetric CE of γ3 · cos(v̄_b, ē_i), same-class negatives dropped."""
    return masked_symmetric_cross_entropy(gamma3 * cosine_logits(image, sentence, 1.0), labels)

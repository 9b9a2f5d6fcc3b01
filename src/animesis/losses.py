"""Loss terms as pure functions of tensors.

Conventions: `label` is a (B, H, W) long map of semantic classes 0..N-1; discriminator logits are
(B, C, H, W); the N+1 segmentation target of a real pixel of class c is c+1 and of a fake pixel 0.
Nothing here synchronises with the host (no .item(), no torch.unique), so it is safe inside
compiled or graph-captured steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from kornia.color import rgb_to_grayscale


def class_balance_weights(label: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-pixel weights (B, H, W): inverse class frequency in the batch, normalised over present classes.

    As OASIS: w_c = B*H*W / (K_present * count_c), so rare classes (eyes, mouth) weigh as much in
    total as the background and the mean weight over the batch is 1.
    """
    flat = label.flatten()
    # scatter_add rather than bincount: bincount on CUDA reads the maximum back to the host.
    counts = torch.zeros(num_classes, device=label.device).scatter_add_(
        0, flat, torch.ones_like(flat, dtype=torch.float)
    )
    present = (counts > 0).float().sum()
    w = label.numel() / (present * counts.clamp(min=1))  # (N,)
    return w[label]


def n1_real_loss(seg: torch.Tensor, label: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Cross-entropy towards the true class (channel c+1), optionally class-balanced."""
    ce = F.cross_entropy(seg.float(), label + 1, reduction="none")  # (B, H, W)
    return (ce * weights).mean() if weights is not None else ce.mean()


def n1_fake_loss(seg: torch.Tensor) -> torch.Tensor:
    """Cross-entropy towards the 'fake' channel 0 at every pixel."""
    target = torch.zeros(seg.shape[0], *seg.shape[2:], dtype=torch.long, device=seg.device)
    return F.cross_entropy(seg.float(), target)


def edge_loss(edge_logit: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the edge head (B, 1, H, W) against a 0/1 map (B, H, W)."""
    return F.binary_cross_entropy_with_logits(edge_logit[:, 0].float(), target.float())


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (B, H, W) values over the pixels of a (B, H, W) bool/float mask; 0 for an empty mask."""
    m = mask.float()
    return (values * m).sum() / m.sum().clamp(min=1.0)


def identity_loss(logits: torch.Tensor, character: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-pixel character cross-entropy, averaged over the pixels in `mask`.

    logits (B, K, H, W); character (B,) ids or a (B, H, W) id map; mask (B, H, W) bool/float of the
    pixels that carry identity (background does not).
    """
    if character.dim() == 1:
        character = character[:, None, None].expand(-1, *logits.shape[2:])
    ce = F.cross_entropy(logits.float(), character, reduction="none")  # (B, H, W)
    return masked_mean(ce, mask)


def texture_cells(background: torch.Tensor, stride: int, min_share: float = 0.5) -> torch.Tensor:
    """(B, H/stride, W/stride) bool: the texture critic's cells of which at least `min_share` of the
    pixels are background ((B, 1, H, W) float mask), so its verdict is mostly on a pattern."""
    return F.avg_pool2d(background.float(), stride, stride)[:, 0] >= min_share


def texture_loss(logits: torch.Tensor, cells: torch.Tensor, real: bool) -> torch.Tensor:
    """Non-saturating loss of the critic's (B, 1, h, w) logits towards "real" or "painted", averaged
    over the cells of a (B, h, w) mask; 0 when no cell is background."""
    target = torch.full_like(logits[:, 0], float(real), dtype=torch.float32)
    bce = F.binary_cross_entropy_with_logits(logits[:, 0].float(), target, reduction="none")
    return masked_mean(bce, cells)


def mode_seeking_loss(
    fake_a: torch.Tensor,
    fake_b: torch.Tensor,
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    mask: torch.Tensor | None = None,
    eps: float = 1e-5,
    light_outside: bool = False,
) -> torch.Tensor:
    """MSGAN's term (Mao et al. 2019): two samples of one condition should differ as their noises do.

    1 / (mean|fake_a - fake_b| / mean|z_a - z_b| + eps); pairs share label map and character. With a
    (B, H, W) mask the image difference is averaged over the masked pixels only (e.g. the background,
    which may change with the noise while the character's colours must not). With `light_outside` the
    pixels outside the mask count too, by their difference in luminance alone: light and shading may
    change there, hue may not.
    """
    delta = fake_a.float() - fake_b.float()  # (B, 3, H, W)
    diff = delta.abs().mean(dim=1)  # (B, H, W)
    if mask is not None and light_outside:
        light = rgb_to_grayscale(delta)[:, 0].abs()  # BT.601 luma is linear: the luma of the difference
        diff = torch.where(mask, diff, light)
    elif mask is not None:
        diff = masked_mean(diff, mask)
    ratio = diff.mean() / (z_a.float() - z_b.float()).abs().mean()
    return 1.0 / (ratio + eps)


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) of (B, Z) posteriors: summed over Z, averaged over the batch."""
    kl = -0.5 * (1 + logvar.float() - mu.float().square() - logvar.float().exp())
    return kl.sum(dim=1).mean()


# OASIS's weights for the five VGG taps, deepest last.
VGG_TAP_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


def tap_weights(taps: int) -> tuple[float, ...]:
    """OASIS's weights for the first `taps` taps, scaled to the full network's total: a truncated
    network is cheaper, and should not also be a ~7x weaker term (3 taps alone sum to 0.22 of 1.47)."""
    first = VGG_TAP_WEIGHTS[:taps]
    scale = sum(VGG_TAP_WEIGHTS) / sum(first)
    return tuple(w * scale for w in first)


def perceptual_loss(
    fake_taps: list[torch.Tensor], real_taps: list[torch.Tensor], weights=VGG_TAP_WEIGHTS
) -> torch.Tensor:
    """Weighted L1 between feature maps of the fake and of the (fixed) real image.

    Taps are shallowest first; fewer taps than weights (a truncated network) take the first weights.
    """
    return perceptual_distances(fake_taps, real_taps, weights).mean()  # every picture the same size


def perceptual_distances(
    fake_taps: list[torch.Tensor], real_taps: list[torch.Tensor], weights=VGG_TAP_WEIGHTS
) -> torch.Tensor:
    """(B,) each picture's weighted mean feature L1 to its (fixed) real one; `perceptual_loss` per picture."""
    return sum(
        w * (f.float() - r.detach().float()).abs().flatten(1).mean(dim=1)
        for w, f, r in zip(weights[: len(fake_taps)], fake_taps, real_taps, strict=True)
    )


def best_of_pair(distances: torch.Tensor, pair: int) -> torch.Tensor:
    """Mean over a batch's (B + pair,) distances to the real picture, where the last `pair` entries are
    the first `pair` pictures painted again with other noise: each of those counts by the nearer painting.

    Conditional IMLE's best-of-m (Li, Zhang and Malik 2019) with m = 2: a paired term on one painting
    pulls every noise to the mean of what the map allows (a flat background); counting only the
    nearer of two lets the other be another plausible picture.
    """
    B = distances.shape[0] - pair
    first = torch.minimum(distances[:pair], distances[B:])
    return torch.cat([first, distances[pair:B]]).mean()


def masked_l1(fake: torch.Tensor, real: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference (B, 3, H, W) over the pixels of a (B, H, W) mask, or weighted by (B, H, W)
    float weights."""
    return masked_mean((fake.float() - real.float()).abs().mean(dim=1), mask)


# Colour axes the region-colour term compares along (unit vectors in RGB): the three channels,
# luminance and two opponent axes, so a hue shift shows on some axis whatever its direction.
COLOUR_AXES = (
    (1.0, 0.0, 0.0),
    (0.0, 1.0, 0.0),
    (0.0, 0.0, 1.0),
    (3**-0.5, 3**-0.5, 3**-0.5),
    (2**-0.5, -(2**-0.5), 0.0),
    (6**-0.5, 6**-0.5, -2 * 6**-0.5),
)


def region_colour_loss(
    fake: torch.Tensor, real: torch.Tensor, label: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Sliced 1-D Wasserstein distance between each region's colours in fake and real (B, 3, H, W).

    Where in a region a colour lies is left free: an iris whose place in the eye the label map does not
    fix is compared as a set of colours, not pixel by pixel, so a blur of the possible places (what a
    pixel loss settles on) costs as much as a wrong colour. Fake and real share the label map, so a
    region has as many pixels in both: sorting each row by (class, projected colour) lines the two up
    region by region in one sort. `weights` (B, H, W) are per-pixel weights that depend on the class
    alone (0 leaves a class out), e.g. class-balanced weights on the character's pixels.
    """
    axes = torch.tensor(COLOUR_AXES, device=fake.device)  # (P, 3)
    band = 4.0  # |projection| <= sqrt(3) for images in [-1, 1]: every class gets its own band of keys
    offset = (label.flatten(1).float() * band)[:, None]  # (B, 1, HW)
    label_order = label.flatten(1).sort(dim=1, stable=True).indices
    w = weights.flatten(1).gather(1, label_order)[:, None]  # (B, 1, HW): the class order of the sorted rows
    sorted_offset = offset.gather(2, label_order[:, None])

    def sorted_colours(x: torch.Tensor) -> torch.Tensor:
        projected = torch.einsum("pc,bchw->bphw", axes, x.float()).flatten(2)  # (B, P, HW)
        return (projected + offset).sort(dim=2).values - sorted_offset

    gap = (sorted_colours(fake) - sorted_colours(real.detach())).abs()
    return (gap * w).sum() / (w.sum() * len(COLOUR_AXES)).clamp(min=1e-6)


def feature_matching_loss(fake_feats: list[torch.Tensor], real_feats: list[torch.Tensor]) -> torch.Tensor:
    """pix2pixHD's term: L1 between the discriminator's intermediate features of fake and real, averaged
    over layers. Real features are fixed targets."""
    terms = [F.l1_loss(f.float(), r.detach().float()) for f, r in zip(fake_feats, real_feats, strict=True)]
    return sum(terms) / len(terms)


def labelmix_mask(
    label: torch.Tensor, num_classes: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(B, 1, H, W) float mask: every class is assigned to the real (1) or the fake (0) image by a coin flip.

    One flip per class for the whole batch, as OASIS; drawn for all N classes so the shape of the
    draw, and hence the random stream, does not depend on which classes are present.
    """
    coins = torch.randint(0, 2, (num_classes,), device=label.device, generator=generator)
    return coins[label].unsqueeze(1).float()


def labelmix_loss(
    d_mixed: torch.Tensor, d_real: torch.Tensor, d_fake: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """OASIS LabelMix consistency: D(mix(real, fake)) should equal mix(D(real), D(fake)), per channel."""
    target = mask * d_real.float() + (1 - mask) * d_fake.float()
    return F.mse_loss(d_mixed.float(), target)

"""One training iteration: the D step, the G step and the EMA update.

Shared by the training loop and the speed benchmarks, so both time the same code.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from animesis import losses
from animesis.config import LossConfig, TrainConfig
from animesis.data.batch import Batch
from animesis.device import bf16_pays
from animesis.models.discriminator import Discriminator, TextureCritic
from animesis.models.generator import Generator
from animesis.training.distributed import DistEnv, convert_sync_batchnorm
from animesis.training.ema import ema_decay_at, update_ema


def identity_mask(label: torch.Tensor, carries_identity: torch.Tensor) -> torch.Tensor:
    """(B, H, W) bool: pixels whose class carries the character's identity (a table lookup, no sync)."""
    return carries_identity[label]


def paired_pixels(id_mask: torch.Tensor, region: str) -> torch.Tensor | None:
    """(B, 1, H, W) float: where the paired terms compare with the real picture (None: every pixel).

    "character": the pixels whose class carries identity; "near": those and the background within
    H/16 pixels of them, so the outline stays anchored while the far background is left to D and the
    noise (with nothing paired there, the background next to the hair went blotchy).
    """
    if region == "all":
        return None
    mask = id_mask[:, None].float()
    if region == "near":
        r = max(1, id_mask.shape[-2] // 16)
        mask = F.max_pool2d(mask, 2 * r + 1, stride=1, padding=r)
    return mask


def l1_class_weights(label: torch.Tensor, id_mask: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(B, H, W) float: weights (of the L1 and region-colour terms) under which every character class in
    the batch weighs the same in total, whatever its area; 0 on pixels that carry no identity."""
    return losses.class_balance_weights(label, num_classes) * id_mask


def lr_scale_at(step: int, total: int, fraction: float) -> float:
    """The learning rates' factor for the iteration after `step` done of `total`: 1, then linearly
    down over the last `fraction` of the iterations, to 1 / (decay length) on the last one.

    A function of the step alone, so a resumed run takes the same rates as an uninterrupted one.
    """
    decay = round(total * fraction)
    if decay <= 0 or step < total - decay:
        return 1.0
    return max(total - step, 1) / decay


# --- the objective -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Targets:
    """Per-pixel weights shared by the D and G steps of one batch, computed once."""

    weights: torch.Tensor | None  # (B, H, W) class-balancing weights, or None
    id_mask: torch.Tensor  # (B, H, W) bool: pixels whose class carries the character's identity
    background: torch.Tensor | None = None  # (B, 1, H, W) float: what the texture critic sees, or None
    texture_cells: torch.Tensor | None = None  # (B, H/4, W/4) bool: the cells it is judged on
    # (B, H, W) class-balanced weights on the character's pixels (the region-colour term's, and the L1
    # term's with l1_class_balanced), or None when no term asks for them
    class_weights: torch.Tensor | None = None


def d_step_loss(
    D: nn.Module,
    b: Batch,
    t: Targets,
    fake: torch.Tensor,
    lc: LossConfig,
    num_classes: int,
    gen: torch.Generator | None,
) -> tuple[dict[str, torch.Tensor], tuple[torch.Tensor, ...]]:
    """Discriminator loss on real, fake and (LabelMix) mixed images, in one batched D pass.

    Returns the loss terms and the real images' D features (detached; the targets of the G step's
    feature matching, empty when it is off)."""
    images = [b.real, fake]
    mask = None
    if lc.lambda_labelmix > 0:
        mask = losses.labelmix_mask(b.label, num_classes, gen)  # (B, 1, H, W)
        images.append(mask * b.real + (1 - mask) * fake)
    background = torch.cat([t.background] * len(images)) if t.background is not None else None
    out = D(torch.cat(images), background)  # one pass: no batch statistics in D, so as separate passes
    B = len(b)
    real_features = tuple(f[:B].detach() for f in out.features) if lc.lambda_fm > 0 else ()
    seg_r, seg_f = out.seg[:B], out.seg[B : 2 * B]
    edge_r, edge_f = out.edge[:B], out.edge[B : 2 * B]
    terms = {
        "D_real": losses.n1_real_loss(seg_r, b.label, t.weights),
        "D_fake": losses.n1_fake_loss(seg_f),
        "D_edge": lc.lambda_edge
        * (losses.edge_loss(edge_r, b.edge) + losses.edge_loss(edge_f, torch.zeros_like(b.edge))),
    }
    if out.identity is not None and lc.lambda_identity > 0:
        terms["D_identity"] = lc.lambda_identity * losses.identity_loss(out.identity[:B], b.char, t.id_mask)
    if out.texture is not None:  # D gives it only with the critic and a background mask
        cells = t.texture_cells  # the same cells in real and painted: one label map
        terms["D_texture"] = lc.lambda_texture * (
            losses.texture_loss(out.texture[:B], cells, real=True)
            + losses.texture_loss(out.texture[B : 2 * B], cells, real=False)
        )
    if mask is not None:
        flat = out.flat()
        terms["D_labelmix"] = lc.lambda_labelmix * losses.labelmix_loss(
            flat[2 * B :], flat[:B], flat[B : 2 * B], mask
        )
    return terms, real_features


def g_step_loss(
    D: nn.Module,
    b: Batch,
    t: Targets,
    fake: torch.Tensor,
    lc: LossConfig,
    vgg: nn.Module | None = None,
    real_features: tuple[torch.Tensor, ...] = (),
    second: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Generator loss: fakes should segment as their label, show the real image's edges, read as the
    requested character, and (optionally) look like the real picture to VGG or to D's features.

    `second`: the first pictures painted again with other noise; with `lc.vgg_best_of_pair` the
    perceptual term counts the nearer of each two paintings."""
    out = D(fake, t.background)
    terms = {
        "G_adv": losses.n1_real_loss(out.seg, b.label, t.weights),
        "G_edge": lc.lambda_edge * losses.edge_loss(out.edge, b.edge),
    }
    if out.identity is not None and lc.lambda_identity > 0:
        terms["G_identity"] = lc.lambda_identity * losses.identity_loss(out.identity, b.char, t.id_mask)
    if out.texture is not None:
        terms["G_texture"] = lc.lambda_texture * losses.texture_loss(out.texture, t.texture_cells, real=True)
    paired_mask = paired_pixels(t.id_mask, lc.paired_region)  # (B, 1, H, W) or None
    if vgg is not None and lc.lambda_vgg > 0:
        second = second if lc.vgg_best_of_pair else None
        terms["G_vgg"] = perceptual_term(vgg, fake, b.real, lc, paired_mask, second)
    if lc.lambda_l1 > 0:
        weights = t.class_weights if lc.l1_class_balanced else t.id_mask
        terms["G_l1"] = lc.lambda_l1 * losses.masked_l1(fake, b.real, weights)
    if lc.lambda_colour_sw > 0:
        terms["G_colour"] = lc.lambda_colour_sw * losses.region_colour_loss(
            fake, b.real, b.label, t.class_weights
        )
    if lc.lambda_fm > 0:
        fake_feats, real_feats = list(out.features), list(real_features)
        if paired_mask is not None:
            masks = [F.interpolate(paired_mask, size=f.shape[-2:], mode="nearest") for f in fake_feats]
            fake_feats = [f * m for f, m in zip(fake_feats, masks, strict=True)]
            real_feats = [r * m for r, m in zip(real_feats, masks, strict=True)]
        terms["G_fm"] = lc.lambda_fm * losses.feature_matching_loss(fake_feats, real_feats)
    return terms


def perceptual_term(
    vgg: nn.Module,
    fake: torch.Tensor,
    real: torch.Tensor,
    lc: LossConfig,
    mask: torch.Tensor | None,
    second: torch.Tensor | None = None,
) -> torch.Tensor:
    """The weighted VGG-feature L1 of fake to real, times lambda_vgg; pixels outside a (B, 1, H, W)
    mask become mid-grey in both, so there is nothing to match there. With `second` (the first
    pictures painted again), each of those pictures counts by the nearer of its two paintings."""
    if mask is not None:
        fake, real = fake * mask, real * mask
        second = None if second is None else second * mask[: len(second)]
    h = 0 if second is None else len(second)
    if second is not None:
        fake = torch.cat([fake, second])  # one VGG forward for both paintings
    n = lc.vgg_layers
    weights = losses.tap_weights(n) if lc.vgg_keep_total else losses.VGG_TAP_WEIGHTS[:n]
    # fp32 under bf16 autocast when asked: the term is a small difference of large features, which
    # bf16's 8-bit mantissa rounds coarsely
    with torch.autocast(fake.device.type, enabled=False) if lc.vgg_fp32 else contextlib.nullcontext():
        if lc.vgg_fp32:
            fake, real = fake.float(), real.float()
        fake_taps, real_taps = vgg_taps(vgg, fake, n), vgg_taps(vgg, real, n)
        if second is None:
            return lc.lambda_vgg * losses.perceptual_loss(fake_taps, real_taps, weights)
        real_taps = [torch.cat([r, r[:h]]) for r in real_taps]  # the second paintings' real pictures
        return lc.lambda_vgg * losses.best_of_pair(
            losses.perceptual_distances(fake_taps, real_taps, weights), h
        )


def vgg_taps(lpips_vgg: nn.Module, x: torch.Tensor, layers: int = 5) -> list[torch.Tensor]:
    """The first `layers` VGG16 feature maps of images in [-1, 1], through LPIPS's input scaling."""
    return lpips_vgg.backbone((x - lpips_vgg.shift) / lpips_vgg.scale, layers)


def resolved_precision(device: torch.device, precision: str) -> str:
    """'auto' -> 'bf16' where it pays (CUDA; CPUs whose bf16 instructions measure faster), else 'fp32'."""
    if precision != "auto":
        return precision
    return "bf16" if bf16_pays(device) else "fp32"


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast as `resolved_precision` says; weights and optimizers stay fp32."""
    if resolved_precision(device, precision) != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


@dataclass
class TrainStep:
    """G, D, their optimizers and the objective; calling it runs one iteration and returns the loss terms.

    `G_train`/`D_train` may be DDP-wrapped or compiled versions of `G`/`D`; the G step calls D through
    `D_for_G`, never through DDP, because D's weights take no gradient there.
    """

    cfg: TrainConfig
    G: nn.Module
    D: nn.Module
    G_ema: nn.Module | None
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    G_train: nn.Module
    D_train: nn.Module
    D_for_G: nn.Module
    carries_identity: torch.Tensor  # (N,) bool per class: False for background and the like
    device: torch.device
    vgg: nn.Module | None = None  # frozen VGG16 for the perceptual loss

    def __post_init__(self) -> None:
        self.num_classes = self.cfg.generator.num_classes
        self.amp = autocast_context(self.device, self.cfg.precision)

    def __call__(
        self,
        b: Batch,
        gen: torch.Generator | None,
        z: torch.Tensor | None = None,
        step: int = 10**9,  # iterations done before this one (sets the EMA ramp)
    ) -> dict[str, torch.Tensor]:
        """One iteration on batch `b`; noise z is drawn from `gen` unless given."""
        lc, N = self.cfg.loss, self.num_classes
        id_mask = identity_mask(b.label, self.carries_identity)
        background = None
        if self.cfg.discriminator.texture_channels and lc.lambda_texture > 0:
            background = (~id_mask)[:, None].to(b.real.dtype)
        class_weights = None
        if (lc.lambda_l1 and lc.l1_class_balanced) or lc.lambda_colour_sw > 0:
            class_weights = l1_class_weights(b.label, id_mask, N)
        t = Targets(
            weights=losses.class_balance_weights(b.label, N) if lc.class_balancing else None,
            id_mask=id_mask,
            background=background,
            texture_cells=None
            if background is None
            else losses.texture_cells(background, TextureCritic.stride),
            class_weights=class_weights,
        )
        posterior = None
        if z is None and self.G.encoder is not None:  # z from the real picture, reparametrised
            with self.amp:
                mu, logvar = self.G.encoder(b.real)
            eps = torch.randn(mu.shape, device=self.device, generator=gen)
            z, posterior = mu + eps * (0.5 * logvar).exp(), (mu, logvar)
        fake, pair = self._paint(b, gen, z)

        # D step on the detached fake; then the G step through the updated D (one G forward per iteration).
        self.D.requires_grad_(True)
        with self.amp:
            d_terms, real_features = d_step_loss(self.D_train, b, t, fake.detach(), lc, N, gen)
        self.opt_D.zero_grad(set_to_none=True)
        sum(d_terms.values()).backward()
        self.opt_D.step()

        self.D.requires_grad_(False)  # D's weights get no gradient from the G step
        with self.amp:
            second = None if pair is None else pair[1]
            g_terms = g_step_loss(self.D_for_G, b, t, fake, lc, self.vgg, real_features, second)
        if posterior is not None:
            g_terms["G_kl"] = lc.lambda_kl * losses.kl_to_standard_normal(*posterior)
        if pair is not None:
            mask = ~t.id_mask[: pair[0].shape[0]] if lc.ms_region != "all" else None
            g_terms["G_mode_seeking"] = lc.lambda_ms * losses.mode_seeking_loss(
                *pair, mask=mask, light_outside=lc.ms_region == "background_light"
            )
        self.opt_G.zero_grad(set_to_none=True)
        sum(g_terms.values()).backward()
        self.opt_G.step()
        if self.G_ema is not None:
            update_ema(self.G_ema, self.G, ema_decay_at(step, self.cfg.ema_decay, self.cfg.ema_ramp))
        return {**d_terms, **g_terms}

    def set_lr_scale(self, scale: float) -> None:
        """Both optimizers at `scale` times the configured learning rates."""
        for opt, lr in ((self.opt_G, self.cfg.lr_g), (self.opt_D, self.cfg.lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr * scale

    def _paint(self, b: Batch, gen: torch.Generator | None, z: torch.Tensor | None):
        """The G forward: (fake, None), or with mode seeking (fake, the pair it compares): the first half
        of the batch painted again with other noise, in the same forward."""
        B, z_dim = len(b), self.cfg.generator.z_dim
        if z is None and z_dim:
            z = torch.randn(B, z_dim, device=self.device, generator=gen)
        if self.cfg.loss.lambda_ms > 0 and z is not None and B > 1:
            h = B // 2
            z2 = torch.randn(h, z_dim, device=self.device, generator=gen)
            onehot, char = (torch.cat([x, x[:h]]) for x in (b.onehot, b.char))
            with self.amp:
                both = self.G_train(onehot, char, torch.cat([z, z2]))
            return both[:B], (both[:h], both[B:], z[:h], z2)
        with self.amp:
            return self.G_train(b.onehot, b.char, z), None  # (B, 3, H, W)


def build_train_step(cfg: TrainConfig, env: DistEnv, class_names: tuple[str, ...]) -> TrainStep:
    """Networks (identically initialised on every rank), optimizers, DDP and compile wrappers."""
    device = env.device
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(cfg.seed)
    G, D = Generator(cfg.generator), Discriminator(cfg.discriminator)
    G_ema = copy.deepcopy(G).eval() if cfg.use_ema else None
    if env.distributed:
        G = convert_sync_batchnorm(G, device)
    fmt = torch.channels_last if cfg.channels_last else torch.preserve_format
    for m in (G, D, G_ema):
        if m is not None:
            m.to(device=device, memory_format=fmt)
    fused = device.type == "cuda"
    betas = (cfg.beta1, cfg.beta2)
    opt_G = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=betas, fused=fused)
    opt_D = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=betas, fused=fused)
    ids = [device] if device.type == "cuda" else None
    G_train: nn.Module = DDP(G, device_ids=ids) if env.distributed else G
    D_train: nn.Module = DDP(D, device_ids=ids) if env.distributed else D
    D_for_G: nn.Module = D
    if cfg.compile:
        G_train, D_train, D_for_G = torch.compile(G_train), torch.compile(D_train), torch.compile(D)
    carries_identity = torch.tensor([n not in cfg.loss.identity_ignore for n in class_names], device=device)
    vgg = None
    if cfg.loss.lambda_vgg > 0:
        from animesis.metrics.assets import MetricUnavailable
        from animesis.metrics.lpips import load_lpips

        try:
            vgg = load_lpips("vgg", device)
        except MetricUnavailable as e:  # one line: what is missing, and how to train without it
            raise MetricUnavailable(f"{e} (the VGG loss needs it; --lambda_vgg 0 trains without)") from e
    return TrainStep(
        cfg=cfg,
        G=G,
        D=D,
        G_ema=G_ema,
        opt_G=opt_G,
        opt_D=opt_D,
        G_train=G_train,
        D_train=D_train,
        D_for_G=D_for_G,
        carries_identity=carries_identity,
        device=device,
        vgg=vgg,
    )

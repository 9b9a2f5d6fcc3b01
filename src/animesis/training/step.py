"""One training iteration: batch preparation on the device, the D step, the G step and the EMA update.

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
from animesis.config import TrainConfig
from animesis.data.edges import canny_edges
from animesis.models.discriminator import Discriminator
from animesis.models.generator import Generator
from animesis.training.distributed import DistEnv, convert_sync_batchnorm
from animesis.training.ema import ema_decay_at, update_ema


def to_device_batch(
    batch: dict[str, torch.Tensor],
    device: torch.device,
    cfg: TrainConfig,
    num_classes: int,
    flip_gen: torch.Generator | None,
) -> dict[str, torch.Tensor]:
    """uint8 CPU batch -> real in [-1, 1], label ids and one-hot, 0/1 edges, character ids.

    Flips, one-hot and (when the dataset ships no edge maps) Canny run here, on the device.
    """
    real = batch["image"].to(device, non_blocking=True).float().div_(127.5).sub_(1.0)  # (B, 3, H, W)
    label = batch["label"].to(device, non_blocking=True).long()  # (B, H, W)
    edge = batch["edge"].to(device, non_blocking=True) if "edge" in batch else None
    if flip_gen is not None:
        flip = torch.rand(real.shape[0], device=device, generator=flip_gen) < 0.5  # (B,)
        real = torch.where(flip[:, None, None, None], real.flip(-1), real)
        label = torch.where(flip[:, None, None], label.flip(-1), label)
        if edge is not None:
            edge = torch.where(flip[:, None, None], edge.flip(-1), edge)
    if edge is None:
        edge = canny_edges((real + 1) / 2, cfg.canny)
    onehot = F.one_hot(label, num_classes).permute(0, 3, 1, 2).float()  # (B, N, H, W), channels-last strides
    if cfg.channels_last:
        real = real.contiguous(memory_format=torch.channels_last)
    else:
        onehot = onehot.contiguous()
    char = batch["character"].to(device, non_blocking=True).long()  # (B,)
    return {"real": real, "label": label, "onehot": onehot, "edge": edge, "char": char}


def identity_mask(label: torch.Tensor, carries_identity: torch.Tensor) -> torch.Tensor:
    """(B, H, W) bool: pixels whose class carries the character's identity (a table lookup, no sync)."""
    return carries_identity[label]


# --- the objective -------------------------------------------------------------------------------


def d_step_loss(
    D: nn.Module,
    b: dict[str, torch.Tensor],
    fake: torch.Tensor,
    cfg: TrainConfig,
    num_classes: int,
    gen: torch.Generator | None,
) -> dict[str, torch.Tensor]:
    """Discriminator loss on real, fake and (LabelMix) mixed images, in one batched D pass.

    `b` holds the batch plus its class-balancing "weights" and identity "id_mask" (see `TrainStep`).
    """
    lc = cfg.loss
    real = b["real"]
    images = [real, fake]
    mask = None
    if lc.lambda_labelmix > 0:
        mask = losses.labelmix_mask(b["label"], num_classes, gen)  # (B, 1, H, W)
        images.append(mask * real + (1 - mask) * fake)
    out = D(torch.cat(images))  # one pass: D has no batch statistics, so this equals separate passes
    B = real.shape[0]
    if lc.lambda_fm > 0:  # the real images' features: targets of the G step's feature matching
        b["real_features"] = tuple(f[:B].detach() for f in out.features)
    seg_r, seg_f = out.seg[:B], out.seg[B : 2 * B]
    edge_r, edge_f = out.edge[:B], out.edge[B : 2 * B]
    terms = {
        "D_real": losses.n1_real_loss(seg_r, b["label"], b["weights"]),
        "D_fake": losses.n1_fake_loss(seg_f),
        "D_edge": lc.lambda_edge
        * (losses.edge_loss(edge_r, b["edge"]) + losses.edge_loss(edge_f, torch.zeros_like(b["edge"]))),
    }
    if out.identity is not None and lc.lambda_identity > 0:
        terms["D_identity"] = lc.lambda_identity * losses.identity_loss(
            out.identity[:B], b["char"], b["id_mask"]
        )
    if mask is not None:
        flat = out.flat()
        terms["D_labelmix"] = lc.lambda_labelmix * losses.labelmix_loss(
            flat[2 * B :], flat[:B], flat[B : 2 * B], mask
        )
    return terms


def g_step_loss(
    D: nn.Module,
    b: dict[str, torch.Tensor],
    fake: torch.Tensor,
    cfg: TrainConfig,
    vgg: nn.Module | None = None,
) -> dict[str, torch.Tensor]:
    """Generator loss: fakes should segment as their label, show the real image's edges, and read as
    the requested character."""
    lc = cfg.loss
    out = D(fake)
    terms = {
        "G_adv": losses.n1_real_loss(out.seg, b["label"], b["weights"]),
        "G_edge": lc.lambda_edge * losses.edge_loss(out.edge, b["edge"]),
    }
    if out.identity is not None and lc.lambda_identity > 0:
        terms["G_identity"] = lc.lambda_identity * losses.identity_loss(out.identity, b["char"], b["id_mask"])
    paired_mask = b["id_mask"][:, None].float() if lc.paired_region == "character" else None  # (B, 1, H, W)
    if vgg is not None and lc.lambda_vgg > 0:
        f, r = fake, b["real"]
        if paired_mask is not None:  # the background becomes mid-grey in both: nothing to match there
            f, r = f * paired_mask, r * paired_mask
        terms["G_vgg"] = lc.lambda_vgg * losses.perceptual_loss(
            vgg_taps(vgg, f, lc.vgg_layers), vgg_taps(vgg, r, lc.vgg_layers)
        )
    if lc.lambda_fm > 0:
        fake_feats, real_feats = list(out.features), list(b["real_features"])
        if paired_mask is not None:
            masks = [F.interpolate(paired_mask, size=f.shape[-2:], mode="nearest") for f in fake_feats]
            fake_feats = [f * m for f, m in zip(fake_feats, masks, strict=True)]
            real_feats = [r * m for r, m in zip(real_feats, masks, strict=True)]
        terms["G_fm"] = lc.lambda_fm * losses.feature_matching_loss(fake_feats, real_feats)
    return terms


def vgg_taps(lpips_vgg: nn.Module, x: torch.Tensor, layers: int = 5) -> list[torch.Tensor]:
    """The first `layers` VGG16 feature maps of images in [-1, 1], through LPIPS's input scaling."""
    return lpips_vgg.backbone((x - lpips_vgg.shift) / lpips_vgg.scale, layers)


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA by default ('auto'), fp32 elsewhere; weights and optimizers stay fp32."""
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if not use_bf16:
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
        b: dict[str, torch.Tensor],
        gen: torch.Generator | None,
        z: torch.Tensor | None = None,
        step: int = 10**9,  # iterations done before this one (sets the EMA ramp)
    ) -> dict[str, torch.Tensor]:
        """One iteration on batch `b`; noise z is drawn from `gen` unless given."""
        cfg, N = self.cfg, self.num_classes
        B = b["char"].shape[0]
        # Per-pixel weights shared by the D and G steps, computed once.
        b = {
            **b,
            "weights": losses.class_balance_weights(b["label"], N) if cfg.loss.class_balancing else None,
            "id_mask": identity_mask(b["label"], self.carries_identity),
        }
        z_dim = cfg.generator.z_dim
        if z is None and z_dim:
            z = torch.randn(B, z_dim, device=self.device, generator=gen)
        pair = None  # mode seeking: the first half of the batch again, with other noise, in the same forward
        if cfg.loss.lambda_ms > 0 and z is not None and B > 1:
            h = B // 2
            z2 = torch.randn(h, z_dim, device=self.device, generator=gen)
            onehot, char = (torch.cat([t, t[:h]]) for t in (b["onehot"], b["char"]))
            with self.amp:
                both = self.G_train(onehot, char, torch.cat([z, z2]))
            fake, pair = both[:B], (both[:h], both[B:], z[:h], z2)
        else:
            with self.amp:
                fake = self.G_train(b["onehot"], b["char"], z)  # (B, 3, H, W)

        # D step on the detached fake; then the G step through the updated D (one G forward per iteration).
        self.D.requires_grad_(True)
        with self.amp:
            d_terms = d_step_loss(self.D_train, b, fake.detach(), cfg, N, gen)
        self.opt_D.zero_grad(set_to_none=True)
        sum(d_terms.values()).backward()
        self.opt_D.step()

        self.D.requires_grad_(False)  # D's weights get no gradient from the G step
        with self.amp:
            g_terms = g_step_loss(self.D_for_G, b, fake, cfg, self.vgg)
        if pair is not None:
            mask = None
            if cfg.loss.ms_region == "background":
                mask = ~b["id_mask"][: pair[0].shape[0]]  # pixels that carry no identity
            g_terms["G_mode_seeking"] = cfg.loss.lambda_ms * losses.mode_seeking_loss(*pair, mask=mask)
        self.opt_G.zero_grad(set_to_none=True)
        sum(g_terms.values()).backward()
        self.opt_G.step()
        if self.G_ema is not None:
            update_ema(self.G_ema, self.G, ema_decay_at(step, cfg.ema_decay))
        return {**d_terms, **g_terms}


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
        from animesis.metrics.lpips import load_lpips

        vgg = load_lpips("vgg", device)  # raises MetricUnavailable (a clear message) without the weights
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

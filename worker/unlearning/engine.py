"""`unlearn_concept`: learn a concept from a few images, then erase it from the text encoder(s).

1. Textual inversion: a placeholder token's vector learns the images (denoising loss on their
   latents, encoded once); nothing else trains.
2. Erasure: a LoRA on the first (or, with layer_position "last", the final) layers of every
   text encoder, trained with
   forget_weight * |UNet(x_t, concept prompt) - target|^2, where
   target = UNet0(x_t, anchor) - negative_guidance * (UNet0(x_t, concept) - UNet0(x_t, ""))
   (with anchor_projection, the part of the anchor's own push that points along the concept's is
   removed first: an anchor that itself draws the concept is no target) is computed once with the
   original encoders, on a bank of noised latents: half the user's images, half points of the
   original model's own sampling of the concept prompts; plus
   text_forget_weight * |E(concept prompt) - E0(anchor prompt)|^2,
   retain_weight * |E(unrelated) - E0(unrelated)|^2 over every output position, and
   reg_weight * mean(LoRA weights^2); the learning rate follows lr_schedule.
The pipeline is left exactly as it was found: the adapter is removed and the placeholder only
ever lived in copies of the tokenizers.

With `compile=True` the UNet and the erase steps' encoder pass run through `torch.compile`
(Inductor): the same method, about a quarter faster per step on a CPU once compiled, at the cost
of compiling on a process's first erasure of each architecture (the graphs are cached in memory
and, by Inductor, on disk); adapters agree with the uncompiled run to float rounding and are
byte-identical from run to run.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler
from PIL import Image

from worker.unlearning import family as fam_mod
from worker.unlearning import images as img_mod
from worker.unlearning import lora, prompts, token
from worker.unlearning.config import UnlearnConfig
from worker.unlearning.errors import Canceled, InputError
from worker.unlearning.family import Conditioning, Family

Progress = Callable[[str, float], None]
CancelCheck = Callable[[], bool]
MAX_CONCEPT = 100
# Graphs a compiled erasure may add to a code object's cache (Dynamo's default is 8): one per
# architecture, batch size and grad mode (textual inversion, trajectories, bank, erase steps).
RECOMPILE_LIMIT = 64
# The config fields that set the shapes of what the compiled parts see (batch sizes, latent size,
# which layers carry a LoRA and its rank): a config that changes one needs graphs of its own.
SHAPE_FIELDS = (
    "ti_batch",
    "batch",
    "retain_batch",
    "bank",
    "trajectory_share",
    "trajectory_points",
    "resolution",
    "layers",
    "layer_position",
    "rank",
)


def default_shapes(config: UnlearnConfig) -> bool:
    """Whether a compiled erasure with `config` runs the graphs one with the defaults compiled."""
    default = UnlearnConfig()
    same = all(getattr(config, name) == getattr(default, name) for name in SHAPE_FIELDS)
    return same and bool(config.retain_weight) == bool(default.retain_weight)


@dataclass
class Result:
    """What an erasure produced; `artifacts.write` turns it into files."""

    concept: str
    family: str
    token: str
    config: UnlearnConfig
    lora: list[dict[str, torch.Tensor]]
    learned_embeds: list[torch.Tensor]
    layers: list[list[int]]
    timings: dict[str, float] = field(default_factory=dict)
    losses: dict[str, float] = field(default_factory=dict)
    compiled: bool = False

    def diffusers_lora(self) -> dict[str, torch.Tensor]:
        return lora.diffusers_state_dict(self.lora)

    def kohya_lora(self) -> dict[str, torch.Tensor]:
        return lora.kohya_state_dict(self.lora)

    def embeds_state_dict(self) -> dict[str, torch.Tensor]:
        """diffusers' textual-inversion layout: {token: vector}, or SDXL's {clip_l, clip_g}."""
        vecs = [v.detach().float().cpu().reshape(1, -1).contiguous() for v in self.learned_embeds]
        if len(vecs) == 2:
            return {"clip_l": vecs[0], "clip_g": vecs[1]}
        return {self.token: vecs[0]}


@dataclass
class _Run:
    """Everything one erasure's stages share."""

    pipe: Any
    fam: Family
    cfg: UnlearnConfig
    latents: torch.Tensor
    sched: Any
    time_ids: torch.Tensor | None
    gen: torch.Generator
    rng: random.Random
    progress: Progress
    cancel: CancelCheck
    denoiser: Any  # the UNet, or its compiled wrapper
    compiled: bool = False

    def autocast(self) -> AbstractContextManager[Any]:
        if self.latents.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def unet(self, x_t: torch.Tensor, t: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        with self.autocast():
            out = self.denoiser(x_t, t, **cond.unet_kwargs(self.time_ids)).sample
        return out.float()

    def encode_ids(self, ids: tuple[torch.Tensor, ...]) -> Conditioning:
        """The erase steps' encoder pass (through the LoRA), compiled when the run is."""
        return _compiled_encode()(self.fam, ids) if self.compiled else self.fam.encode_ids(ids)

    def noised(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """n random (x0, noise, t, x_t) from the image latents."""
        idx = torch.randint(len(self.latents), (n,), generator=self.gen)
        x0 = self.latents[idx.to(self.latents.device)]
        noise = torch.randn(x0.shape, generator=self.gen).to(x0)
        t = torch.randint(self.sched.config.num_train_timesteps, (n,), generator=self.gen).to(x0.device)
        return x0, noise, t, self.sched.add_noise(x0, noise, t)

    def tick(self, stage: str, step: int, total: int) -> None:
        if step % self.cfg.check_every == 0 or step == total:
            if self.cancel():
                raise Canceled(f"canceled during {stage} at step {step}/{total}")
            self.progress(stage, step / max(total, 1))


def check_concept(concept: str) -> str:
    """The concept name, stripped; refused when empty, too long, or holding control characters."""
    name = " ".join(concept.split())
    if not name:
        raise InputError("the concept name is empty")
    if len(name) > MAX_CONCEPT:
        raise InputError(f"the concept name is {len(name)} characters long; at most {MAX_CONCEPT}")
    if any(not ch.isprintable() for ch in name):
        raise InputError("the concept name holds control characters")
    return name


def unlearn_concept(
    pipe: Any,
    concept: str,
    images: list[Image.Image],
    config: UnlearnConfig,
    *,
    on_progress: Progress | None = None,
    should_cancel: CancelCheck | None = None,
    compile: bool = False,
) -> Result:
    """Erase `concept`, shown by `images`, from `pipe`'s text encoder(s); the pipeline is left unchanged."""
    if compile:  # the patched limit is process-wide while it lasts: one erasure at a time
        with _recompile_limit(RECOMPILE_LIMIT):
            return _unlearn(pipe, concept, images, config, on_progress, should_cancel, True)
    return _unlearn(pipe, concept, images, config, on_progress, should_cancel, False)


def _recompile_limit(limit: int) -> AbstractContextManager[Any]:
    cfg = torch._dynamo.config
    name = "recompile_limit" if hasattr(cfg, "recompile_limit") else "cache_size_limit"  # torch < 2.7
    return cfg.patch(**{name: max(limit, getattr(cfg, name))})


def _unlearn(
    pipe: Any,
    concept: str,
    images: list[Image.Image],
    config: UnlearnConfig,
    on_progress: Progress | None,
    should_cancel: CancelCheck | None,
    compiled: bool,
) -> Result:
    concept = check_concept(concept)
    img_mod.check_count(len(images))
    fam = fam_mod.detect(pipe)
    for part in (pipe.unet, pipe.vae, *fam.text_encoders):
        part.requires_grad_(False)
    start = time.monotonic()
    gen = torch.Generator("cpu").manual_seed(config.seed)
    torch.manual_seed(config.seed)  # LoRA initialisation
    size = config.resolution or pipe.unet.config.sample_size * pipe.vae_scale_factor
    progress = on_progress or (lambda _s, _f: None)
    progress("encode", 0.0)
    latents = img_mod.encode(pipe.vae, img_mod.to_tensor(images, size), gen).to(pipe.unet.device)
    run = _Run(
        pipe=pipe,
        fam=replace(fam, tokenizers=token.add_placeholder(fam.tokenizers, token.PLACEHOLDER)),
        cfg=config,
        latents=latents,
        sched=DDPMScheduler.from_config(pipe.scheduler.config),
        time_ids=fam_mod.time_ids(pipe, size),
        gen=gen,
        rng=random.Random(config.seed),
        progress=progress,
        cancel=should_cancel or (lambda: False),
        compiled=compiled,
        denoiser=_compiled_unet(pipe.unet) if compiled else pipe.unet,
    )
    encoded = time.monotonic()
    progress("encode", 1.0)
    vectors, ti_loss = _learn_token(run, concept)
    learned = time.monotonic()
    layers = [
        fam.lora_layers(i, config.layers, config.layer_position == "first") for i in range(len(fam.text_encoders))
    ]
    state, losses = _erase(run, concept, vectors, layers)
    end = time.monotonic()
    timings = {
        "encode_s": encoded - start,
        "learn_s": learned - encoded,
        "erase_s": end - learned,
        "total_s": end - start,
    }
    return Result(
        concept=concept,
        family=fam.name,
        token=token.PLACEHOLDER,
        config=config,
        lora=state,
        learned_embeds=vectors,
        layers=layers,
        timings={k: round(v, 3) for k, v in timings.items()},
        losses={"textual_inversion": ti_loss, **losses},
        compiled=compiled,
    )


def _compiled_unet(unet: Any) -> Any:
    # A new wrapper per erasure: Dynamo keeps the compiled graphs on the forward's code object,
    # guarded by shapes and grad mode, so every erasure after the first reuses them.
    return torch.compile(unet, dynamic=False)


@cache
def _compiled_encode() -> Callable[[Family, tuple[torch.Tensor, ...]], Conditioning]:
    return torch.compile(Family.encode_ids, dynamic=False)


def _learn_token(run: _Run, concept: str) -> tuple[list[torch.Tensor], float]:
    """Textual inversion: only the placeholder's vector in each encoder trains."""
    vectors = token.initial_vectors(run.fam.text_encoders, run.fam.tokenizers, concept)
    vectors = [v.to(run.latents.device).requires_grad_(True) for v in vectors]
    cfg, loss_value = run.cfg, float("nan")
    if cfg.ti_steps == 0:
        return [v.detach() for v in vectors], loss_value
    opt = torch.optim.AdamW(vectors, lr=cfg.ti_lr, weight_decay=0.0)
    with token.spliced(run.fam.text_encoders, run.fam.tokenizers, vectors):
        for step in range(1, cfg.ti_steps + 1):
            x0, noise, t, x_t = run.noised(cfg.ti_batch)
            texts = [run.rng.choice(prompts.TEMPLATES).format(token.PLACEHOLDER) for _ in range(cfg.ti_batch)]
            pred = run.unet(x_t, t, run.fam.encode(texts))
            target = noise if run.fam.prediction_type == "epsilon" else run.sched.get_velocity(x0, noise, t)
            loss = F.mse_loss(pred, target.float())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_value = loss.item()
            run.tick("learn", step, cfg.ti_steps)
    return [v.detach() for v in vectors], loss_value


@dataclass(frozen=True)
class _Bank:
    """Noised latents and their fixed forget targets, the reference encoder outputs, and loss scales.

    Each loss is divided by its scale, so a weight means the same on a toy model and on SDXL:
    the forget term starts at 1 (its size with a fresh LoRA), the text-forget term starts at 1,
    and the retain term is relative to how much the unrelated prompts' outputs differ from one
    another (what tells prompts apart is a small part of an encoder output's size).
    """

    x_t: torch.Tensor
    t: torch.Tensor
    target: torch.Tensor
    anchor: Conditioning
    forget_ids: tuple[torch.Tensor, ...]
    retain_ids: tuple[torch.Tensor, ...]
    retain_ref: Conditioning
    forget_scale: float
    text_scale: float
    retain_scale: float


@torch.no_grad()
def _bank(run: _Run, pairs: list[prompts.PromptPair], retain: list[str]) -> _Bank:
    """Forget targets from the original encoders: the anchor's prediction, pushed away from the concept's."""
    n_model = round(len(pairs) * run.cfg.trajectory_share)
    _, _, t, x_t = run.noised(len(pairs) - n_model)
    if n_model:
        # One trajectory per `trajectory_points` bank points: a point's own prompt sets its target,
        # whichever of the concept's prompts drew the trajectory it lies on.
        texts = [p.forget for p in pairs[len(pairs) - n_model :]][:: run.cfg.trajectory_points]
        x_m, t_m = _trajectories(run, texts, run.cfg.trajectory_points)
        x_t, t = torch.cat([x_t, x_m[:n_model]]), torch.cat([t, t_m[:n_model]])
    targets, gaps = [], []
    for i in range(0, len(pairs), 16):
        chunk = pairs[i : i + 16]
        cond = run.fam.encode([p.anchor for p in chunk] + [p.forget for p in chunk] + [""] * len(chunk))
        xs, ts = x_t[i : i + 16].repeat(3, 1, 1, 1), t[i : i + 16].repeat(3)
        eps_anchor, eps_concept, eps_empty = run.unet(xs, ts, cond).chunk(3)
        # ESD's target: the anchor's prediction, pushed away from what the concept adds to the
        # unconditional prediction.
        concept_dir = eps_concept - eps_empty
        if run.cfg.anchor_projection:
            eps_anchor = eps_anchor - run.cfg.anchor_projection * _overlap(eps_anchor - eps_empty, concept_dir)
        targets.append(eps_anchor - run.cfg.negative_guidance * concept_dir)
        gaps.append((targets[-1] - eps_concept).pow(2).mean())
    anchor = run.fam.encode([p.anchor for p in pairs])
    forget_ids, retain_ids = run.fam.token_ids([p.forget for p in pairs]), run.fam.token_ids(retain)
    forget, retain_ref = run.fam.encode_ids(forget_ids), run.fam.encode_ids(retain_ids)
    return _Bank(
        x_t=x_t,
        t=t,
        target=torch.cat(targets),
        anchor=anchor,
        forget_ids=forget_ids,
        retain_ids=retain_ids,
        retain_ref=retain_ref,
        forget_scale=max(float(torch.stack(gaps).mean()), 1e-12),
        text_scale=max(float(_cond_mse(forget, anchor)), 1e-12),
        retain_scale=max(float(_cond_mse(retain_ref, _mean_like(retain_ref))), 1e-12),
    )


@torch.no_grad()
def _trajectories(run: _Run, texts: list[str], points: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the original model's own sampling of `texts` passes: `points` random steps of each trajectory.

    The user's few images cover little of what the model draws for the concept; erasing along the
    model's own trajectories (as ESD does) reaches the samples a user would actually get.
    """
    sched = DDIMScheduler.from_config(run.pipe.scheduler.config)
    sched.set_timesteps(run.cfg.trajectory_steps, device=run.latents.device)
    n = len(texts)
    stops = torch.randint(len(sched.timesteps), (n, points), generator=run.gen)
    x = torch.randn((n, *run.latents.shape[1:]), generator=run.gen).to(run.latents) * sched.init_noise_sigma
    cond, uncond = run.fam.encode(texts), run.fam.encode([""] * n)
    both = Conditioning(
        torch.cat([uncond.embeds, cond.embeds]),
        None if cond.pooled is None or uncond.pooled is None else torch.cat([uncond.pooled, cond.pooled]),
    )
    x_out = torch.empty((n, points, *x.shape[1:]), dtype=x.dtype, device=x.device)
    t_out = torch.empty((n, points), dtype=torch.long, device=x.device)
    for k, t in enumerate(sched.timesteps[: int(stops.max()) + 1]):
        rows, cols = (stops == k).to(x.device).nonzero(as_tuple=True)
        x_out[rows, cols], t_out[rows, cols] = x[rows], int(t)
        pred_u, pred_c = run.unet(torch.cat([x, x]), t.expand(2 * n), both).chunk(2)
        guided = pred_u + run.cfg.trajectory_guidance * (pred_c - pred_u)
        x = sched.step(guided, t, x).prev_sample
    return x_out.flatten(0, 1), t_out.flatten()


def _overlap(d: torch.Tensor, concept_dir: torch.Tensor) -> torch.Tensor:
    """The part of each `d` that points along its `concept_dir` (none when it points away)."""
    dims = tuple(range(1, d.ndim))
    dot = (d * concept_dir).sum(dims, keepdim=True)
    return dot.clamp_min(0) / concept_dir.pow(2).sum(dims, keepdim=True).clamp_min(1e-12) * concept_dir


def _mean_like(c: Conditioning) -> Conditioning:
    """Every prompt replaced by the batch mean: the distance to it is how much prompts differ."""
    pooled = None if c.pooled is None else c.pooled.mean(0, keepdim=True).expand_as(c.pooled)
    return Conditioning(c.embeds.mean(0, keepdim=True).expand_as(c.embeds), pooled)


def _cond_mse(a: Conditioning, b: Conditioning) -> torch.Tensor:
    loss = F.mse_loss(a.embeds.float(), b.embeds.float())
    if a.pooled is not None and b.pooled is not None:
        loss = loss + F.mse_loss(a.pooled.float(), b.pooled.float())
    return loss


def _erase(
    run: _Run, concept: str, vectors: list[torch.Tensor], layer_lists: list[list[int]]
) -> tuple[list[dict[str, torch.Tensor]], dict]:
    cfg, fam = run.cfg, run.fam
    words = prompts.vocabulary_words(fam.tokenizers[0], exclude=set(concept.lower().split()))
    pairs = prompts.forget_pairs([concept, token.PLACEHOLDER], cfg.anchor, words, cfg.context_words, cfg.bank, run.rng)
    retain = prompts.retain_prompts(words, cfg.retain_prompts, max(256, len(cfg.retain_prompts)), run.rng)
    with token.spliced(fam.text_encoders, fam.tokenizers, vectors):
        bank = _bank(run, pairs, retain)
        params = lora.attach(fam.text_encoders, layer_lists, cfg.rank, cfg.alpha)
        try:
            losses = _erase_loop(run, bank, params)
            state = [lora.folded_state_dict(te, cfg.rank, cfg.alpha) for te in fam.text_encoders]
        finally:
            lora.detach(fam.text_encoders)
    return state, losses


def _erase_loop(run: _Run, bank: _Bank, params: list[Any]) -> dict[str, float]:
    cfg = run.cfg
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps) if cfg.lr_schedule == "cosine" else None
    parts: dict[str, torch.Tensor] = {}
    for step in range(1, cfg.steps + 1):
        idx = torch.randint(len(bank.x_t), (cfg.batch,), generator=run.gen)
        dev_idx = idx.to(bank.x_t.device)
        n_retain = cfg.retain_batch if cfg.retain_weight else 0
        r = torch.randint(len(bank.retain_ref.embeds), (n_retain,), generator=run.gen)
        # One pass through the encoders for the forget and the retain prompts together: on a small
        # model a step costs more per operation than per prompt.
        ids = zip(bank.forget_ids, bank.retain_ids, strict=True)
        both = run.encode_ids(tuple(torch.cat([f[idx], k[r]]) for f, k in ids))
        cond = both.rows(slice(0, cfg.batch))
        parts = {}
        if cfg.forget_weight:
            pred = run.unet(bank.x_t[dev_idx], bank.t[dev_idx], cond)
            parts["forget"] = cfg.forget_weight * F.mse_loss(pred, bank.target[dev_idx]) / bank.forget_scale
        if cfg.text_forget_weight:
            text = _cond_mse(cond, bank.anchor.rows(dev_idx))
            parts["text_forget"] = cfg.text_forget_weight * text / bank.text_scale
        if cfg.retain_weight:
            kept = _cond_mse(both.rows(slice(cfg.batch, None)), bank.retain_ref.rows(r.to(bank.x_t.device)))
            parts["retain"] = cfg.retain_weight * kept / bank.retain_scale
        parts["reg"] = cfg.reg_weight * torch.stack([p.float().pow(2).mean() for p in params]).mean()
        loss = torch.stack(list(parts.values())).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        run.tick("erase", step, cfg.steps)
    return {k: float(v.item()) for k, v in parts.items()}

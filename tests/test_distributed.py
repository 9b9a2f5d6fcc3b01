"""DDP on 2 CPU processes (gloo): ranks stay identical and match one process with the same global batch."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from animesis.config import DiscriminatorConfig, GeneratorConfig, TrainConfig
from animesis.data.batch import Batch
from animesis.training.distributed import InfiniteSampler, init_distributed
from animesis.training.step import build_train_step

N, K, S, STEPS = 4, 3, 16, 6
CLASSES = ("a", "b", "c", "background")


def config() -> TrainConfig:
    g = GeneratorConfig(
        num_classes=N, num_characters=K, base_channels=4, num_blocks=2, z_dim=3, id_dim=3, spade_hidden=4
    )
    d = DiscriminatorConfig(num_classes=N, num_characters=K, base_channels=4, num_blocks=2)
    return TrainConfig(
        name="ddp",
        dataroot="",
        generator=g,
        discriminator=d,
        image_size=(S, S),
        batch_size=4,
        device="cpu",
        precision="fp32",  # the sums are compared tightly; bf16's rounding would swamp them
        seed=3,
        lr_g=1e-3,
        lr_d=1e-3,
    )


def global_batches() -> list[dict[str, torch.Tensor]]:
    """Batches of 4 whose two halves hold the same label maps, so per-process class weights equal global ones."""
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(STEPS):
        maps = torch.randint(0, N, (2, S, S), generator=g)
        label = maps[[0, 1, 1, 0]]  # each process's half ([0, 2] and [1, 3]) holds both maps
        out.append(
            {
                "real": torch.rand(4, 3, S, S, generator=g) * 2 - 1,
                "label": label,
                "onehot": torch.nn.functional.one_hot(label, N).permute(0, 3, 1, 2).float().contiguous(),
                "edge": (torch.rand(4, S, S, generator=g) < 0.2).to(torch.uint8),
                "char": torch.randint(0, K, (4,), generator=g),
                "z": torch.randn(4, 3, generator=g),
            }
        )
    return out


def flat_grads(ts) -> torch.Tensor:
    """This iteration's gradients: G's from the G step, D's from the D step (both still in .grad)."""
    params = list(ts.G.parameters()) + list(ts.D.parameters())
    return torch.cat([p.grad.flatten() if p.grad is not None else torch.zeros(p.numel()) for p in params])


def flat_weights(ts) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in list(ts.G.parameters()) + list(ts.D.parameters())])


def trajectory(env, optimizer: str, part: list[int] | None = None) -> dict[str, list[torch.Tensor]]:
    """Gradients and weights after each of STEPS iterations on the global batches (or this rank's part).

    With "sgd" both optimizers are plain SGD: a weight difference is lr times a gradient difference, so
    rounding differences stay rounding-sized. Adam's first steps move every weight by about lr whatever
    its gradient's size, which turns a rounding-level sign flip of a near-zero gradient into an lr-sized
    weight difference; its trajectory is compared rank against rank, not against one process.
    """
    ts = build_train_step(config(), env, CLASSES)
    if optimizer == "sgd":
        ts.opt_G = torch.optim.SGD(ts.G.parameters(), lr=1e-2)
        ts.opt_D = torch.optim.SGD(ts.D.parameters(), lr=1e-2)
    out: dict[str, list[torch.Tensor]] = {"grads": [], "weights": []}
    for b in global_batches():
        local = {k: v[part] for k, v in b.items()} if part is not None else b
        gen = torch.Generator().manual_seed(7)  # same LabelMix coins on both ranks and in the reference
        batch = Batch(**{k: v for k, v in local.items() if k != "z"})
        ts(batch, gen, z=local["z"])
        out["grads"].append(flat_grads(ts))
        out["weights"].append(flat_weights(ts))
    return out


def run(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    env = init_distributed("cpu")
    part = [0, 2] if rank == 0 else [1, 3]  # the interleaved split InfiniteSampler gives rank 0 and 1
    result = {opt: trajectory(env, opt, part) for opt in ("adam", "sgd")}
    final = result["adam"]["weights"][-1]
    gathered = [torch.empty_like(final) for _ in range(world)]
    dist.all_gather(gathered, final)
    if rank == 0:
        torch.save({**result, "adam_ranks": gathered}, out)
    dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(tmp_path):
    """One iteration's gradients are the same sums in both (checked tightly). After that, rounding
    differences of ~1e-8 in the weights can flip a LeakyReLU or a LabelMix comparison at a near-tie, which
    changes a gradient by a finite amount; plain SGD does not amplify it into the weights. Measured on a
    2-core AMD EPYC (2026-12-03, 6 iterations): iteration 0 gradients 1.0e-6..1.2e-6 relative; later
    gradients 7e-7..1e-6 at OMP_NUM_THREADS=2 and up to 1.6e-4 at 1 thread (one flip, iteration 2);
    SGD weights up to 2e-8 and 6.1e-7. The bounds leave 8x (1e-5, 2e-3) and 16x (1e-5) margin."""
    out = str(tmp_path / "ddp.pt")
    mp.spawn(run, args=(2, free_port(), out), nprocs=2, join=True)
    ddp = torch.load(out)
    r0, r1 = ddp["adam_ranks"]
    assert torch.equal(r0, r1), "ranks diverged"

    env = init_distributed("cpu")
    adam = trajectory(env, "adam")
    # One iteration: D's gradients (real, fake, LabelMix) and G's (through the updated D) are the same sums.
    assert adam["grads"][0].abs().max() > 0
    assert rel(ddp["adam"]["grads"][0], adam["grads"][0]) < 1e-5

    sgd = trajectory(env, "sgd")
    for step in range(STEPS):
        bound = 1e-5 if step == 0 else 2e-3
        assert rel(ddp["sgd"]["grads"][step], sgd["grads"][step]) < bound, f"gradients, iteration {step}"
        assert rel(ddp["sgd"]["weights"][step], sgd["weights"][step]) < 1e-5, f"weights, iteration {step}"
    moved = rel(sgd["weights"][-1], trajectory(env, "sgd", part=[0, 1])["weights"][-1])
    assert moved > 1e-4, "another batch must give another trajectory, or the comparison proves nothing"


def test_sampler_shards_are_disjoint_and_resume_exactly():
    full = InfiniteSampler(10, seed=1)
    ranks = [InfiniteSampler(10, rank=r, world_size=2, seed=1) for r in range(2)]
    stream = [i for _, i in zip(range(40), iter(full), strict=False)]
    shards = [[i for _, i in zip(range(20), iter(s), strict=False)] for s in ranks]
    assert shards[0] == stream[0::2] and shards[1] == stream[1::2]
    assert sorted(stream[:10]) == list(range(10))  # each epoch is a permutation
    resumed = InfiniteSampler(10, seed=1, start=13)
    assert [i for _, i in zip(range(10), iter(resumed), strict=False)] == stream[13:23]


@pytest.mark.slow
def test_torchrun_trains_and_resumes_with_two_cpu_processes(tmp_path):
    from datagen import write_tiny_dataset

    from animesis import runs

    data = write_tiny_dataset(tmp_path / "data", n_train=8, n_val=0, n_test=2)
    ck = tmp_path / "checkpoints"
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root / "src")}

    def torchrun(steps: int, *extra: str) -> subprocess.CompletedProcess:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "animesis",
            "train",
            "--name",
            "ddp",
            "--dataroot",
            str(data),
            "--preset",
            "tiny",
            "--crop_size",
            "32",
            "--batch_size",
            "4",
            "--max_steps",
            str(steps),
            "--gpu_ids",
            "-1",
            "--freq_print",
            "2",
            "--freq_save_latest",
            "2",
            "--freq_fid",
            "0",
            "--num_workers",
            "0",
            "--checkpoints_dir",
            str(ck),
            "--no_progress",
            *extra,
        ]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)

    r = torchrun(4)
    assert r.returncode == 0, r.stderr[-3000:]
    run = ck / "ddp"
    assert runs.read_pointer(run, "latest") == 4
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [2, 4]  # one writer: rank 0
    r = torchrun(6, "--continue_train")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed from" in r.stdout and runs.read_pointer(run, "latest") == 6

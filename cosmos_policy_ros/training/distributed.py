"""Data parallelism under torchrun: DDP, or FSDP2 (fully_shard per block) for the 2b preset.

Every rank draws the same global batch (samples and noise come from the step's seed) and
trains on its rows [rank * B/W, (rank+1) * B/W); gradients are averaged, so W processes take
the same step as one process on the whole batch.
"""
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def rows(self, batch: int) -> slice:
        if batch % self.size:
            raise ValueError(f'optim.batch_size ({batch}) must be divisible by the number of '
                             f'processes ({self.size})')
        per = batch // self.size
        return slice(self.rank * per, (self.rank + 1) * per)


def init(device: str) -> World:
    """Join the torchrun process group when WORLD_SIZE > 1 (gloo on CPU, nccl on CUDA)."""
    size = int(os.environ.get('WORLD_SIZE', '1'))
    if size <= 1:
        return World()
    rank, local = int(os.environ['RANK']), int(os.environ.get('LOCAL_RANK', '0'))
    if device.startswith('cuda'):
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group('nccl' if device.startswith('cuda') else 'gloo')
    return World(rank, size, local)


def device_for(device: str, world: World) -> torch.device:
    if device.startswith('cuda') and world.size > 1:
        return torch.device('cuda', world.local_rank)
    return torch.device(device)


def wrap(net: torch.nn.Module, world: World, fsdp: bool, device: torch.device,
         bf16: bool) -> torch.nn.Module:
    """DDP or FSDP2 around the DiT (unchanged for a single process without FSDP)."""
    if fsdp:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16 if bf16 else None,
                                      reduce_dtype=torch.float32)
        if world.size > 1 or dist.is_initialized():
            for block in net.blocks:
                fully_shard(block, mp_policy=policy)
            fully_shard(net, mp_policy=policy)
        return net
    if world.size > 1:
        from torch.nn.parallel import DistributedDataParallel
        ids = [device.index] if device.type == 'cuda' else None
        return DistributedDataParallel(net, device_ids=ids)
    return net


def mean(value: float, world: World, device: torch.device | str = 'cpu') -> float:
    """Average of a float over the ranks (nccl needs the tensor on the rank's GPU)."""
    if world.size == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / world.size


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()


def shutdown(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()

"""Run by ``torchrun`` from test_shards_ddp.py: one rank of a 2-rank gloo job.

Writes ``<out>/rank<r>.json``: the image_ids of one full epoch, of the first ``k``
batches of a second run, and of the run resumed from that point's state_dict.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import torch.distributed as dist
from torchdata.stateful_dataloader import StatefulDataLoader

from ango_torch.datasets.shards import AngoShards


def ids(batch: list[tuple[Any, dict[str, Any]]]) -> list[int]:
    return [int(t["image_id"]) for _, t in batch]


def loader(index: str, state: dict[str, Any] | None = None) -> StatefulDataLoader:
    ds = AngoShards(index, task="detection", seed=7)
    ds.set_epoch(1)
    dl = StatefulDataLoader(ds, batch_size=2, num_workers=2, collate_fn=ids)
    if state is not None:
        dl.load_state_dict(state)
    return dl


def main() -> None:
    index, out, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    full = [i for batch in loader(index) for i in batch]
    dl = loader(index)
    first: list[int] = []
    for n, batch in enumerate(dl):
        first += batch
        if n + 1 == k:
            break
    state = dl.state_dict()
    rest = [i for batch in loader(index, state) for i in batch]
    counts = [0, 0]
    dist.all_gather_object(counts, len(full))
    with open(f"{out}/rank{rank}.json", "w") as f:
        json.dump({"full": full, "first": first, "rest": rest, "counts": counts}, f)
    dist.barrier()  # as examples/_common.py's finish: no rank leaves while another still talks
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

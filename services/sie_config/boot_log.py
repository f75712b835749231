"""After a restart, the delta log starts with the last writes it can recover from the store.

Why: sie-config is often stopped mid-write (`sie-chaos` config_kill, an OOM kill, a drained
node). The write's epoch is then persisted but was never published, so every mirror is one epoch
behind the restarted sie-config. With an empty log, each of them took a full snapshot: 0.4-0.7 s
per gateway with 6,000 models on a busy machine, where a catch-up of one delta takes
milliseconds.

How: each epoch writes at most one model file, and every later write leaves a newer file, so
the models written in the last ``K`` epochs are among the ``K`` files modified last
(`ConfigStore.recent_models`). The log is seeded with those models, oldest first, as the
deltas of the epochs ``E-n+1 .. E`` (``E`` the boot epoch, ``n`` the files found), and answers
for any ``since >= E-K``. These labels are not the epochs the writes really had; what counts is
that a mirror at ``since`` receives every model that may have changed after it. A model it
already holds changes nothing when applied again (an append of known profiles is a no-op), and
a catch-up is kept only if its hashes are sie-config's (`sie_actors/domain/catchup.py`). So a
wrong guess (a clock stepped back, a file touched by hand, a store shared with another writer)
costs a full snapshot, never a wrong registry.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Sequence

from sie_actors.domain.delta import ConfigDelta, write_deltas
from sie_config.delta_log import DeltaLog
from sie_config.state import ConfigState

log = logging.getLogger(__name__)

# Epochs recovered at most: a restart with writes flowing at ~20/s leaves mirrors a few epochs
# behind, and past a few hundred deltas a full snapshot is about as cheap to apply.
RECOVERED_EPOCHS = 256


def recovered_epochs(state: ConfigState, newest_first: Sequence[tuple[str, float]],
                     router_id: str) -> tuple[int, list[tuple[int, tuple[ConfigDelta, ...]]]]:
    """The first label used, and the seeded epochs for the models ``newest_first`` (id as
    stored, modification time), oldest first, the last at ``state.epoch``.

    Models with the same time (a coarse clock) cannot be ordered, so they go together, at the
    label of the last of them: a mirror whose epoch falls among their labels gets them all.
    A file whose model the restore refused is left out: sie-config does not serve it, so no
    mirror must get it."""
    registry = state.registry
    served = []
    for stored_id, modified in newest_first:
        entry = registry.get_model(stored_id)
        if entry is not None and entry.model_id in state.api_models \
                and entry.model_id in state.raw_yaml:
            served.append((entry, modified))
    served.reverse()  # oldest first: the newest file gets the boot epoch
    first = state.epoch - len(served) + 1
    epochs: list[tuple[int, tuple[ConfigDelta, ...]]] = []
    group: list[ConfigDelta] = []
    for position, (entry, modified) in enumerate(served):
        epoch = first + position
        group = [replace(d, epoch=epoch) for d in group]
        group += write_deltas(router_id, entry.model_id, tuple(entry.profiles),
                              state.raw_yaml[entry.model_id], sorted(entry.bundles), epoch,
                              state.generation, registry.bundle_config_hash)
        if position + 1 == len(served) or served[position + 1][1] != modified:
            epochs.append((epoch, tuple(group)))
            group = []
    return first, epochs


def seed(delta_log: DeltaLog, state: ConfigState,
         newest_first: Sequence[tuple[str, float]] | None, router_id: str,
         window: int = RECOVERED_EPOCHS) -> None:
    """Seed the empty ``delta_log`` of a service starting at ``state``; ``newest_first`` None
    (the store cannot say when its files were written) leaves it empty."""
    if not newest_first or window <= 0:
        return
    first, epochs = recovered_epochs(state, newest_first, router_id)
    if not epochs or first <= 0:
        return  # fewer epochs than files written (a hand-made store): no labels fit
    # Ties at the store's cut can make the list longer than the window; it covers as many
    # epochs as it holds models.
    held = state.epoch - first + 1
    base = max(state.epoch - max(window, held), 0)
    delta_log.recover(base, epochs)
    log.info("delta log: the changes after epoch %d recovered from the %d model files "
             "written last", base, held)

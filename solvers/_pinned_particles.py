"""Per-particle histories kept in the device's host memory space (XLA memory kinds), their
blocks of particles moved to the device inside the compiled step, with no host callback.

A `PinnedParticles` holds its (steps, particles, stored) history as a JAX array placed in the
`pinned_host` memory of the device. Inside the jitted step a block is a dynamic slice of it
moved to device memory (`jax.device_put(..., jax.memory.Space.Device)`), and new pairs are a
dynamic update slice of it with an update moved to host memory. XLA sees every transfer in the
program, orders it by data dependence like any other operation, and its scheduler may start
the next block's copy while the current block computes (on a GPU, as asynchronous copies on a
separate stream). The history is an ordinary array of the state, so it is donated and updated
in place like a resident one.

Under `vmap` (the groups of a solve) a dynamic slice with unbatched indices would become a
gather, which JAX does not take on host memory; `_read` and `_write` batch themselves instead
(`custom_vmap`): one slice, or update, of the stacked histories at the same indices.

Where the compiler keeps such an array depends on the backend: on a CPU, host and device memory
are the same, and XLA copies the whole history into device memory at the step's entry (so this
form saves no memory there; use the callbacks of `HostParticles` on a CPU). `solvers._streamed_
history` says what a streamed history provides.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_batching import custom_vmap
from jax.sharding import SingleDeviceSharding
from jaxtyping import Array, Float

from ._streamed_history import AbstractHistoryStore, AbstractStreamedHistory, AbstractStreamedSlice

HOST_MEMORY = "pinned_host"
_EMPTY = np.zeros(())  # stands for an empty history until `PinnedHistories.stack` makes it


class PinnedSlice(AbstractStreamedSlice):
    """Depth step m of a `PinnedParticles`: (particles, stored), read block by block, the
    next block's copy issued before the current block's products (`over_blocks`)."""

    def block(self, index) -> Float[Array, "block stored"]:
        size = self.shape[0] // self.blocks
        return _read(self.source.array, self.m, jnp.asarray(index, jnp.int32) * size, size)

    def over_blocks(self, step, carry):
        """`step(carry, c, block c) -> (carry, y)` over the blocks c = 0, 1, ... in order:
        the last carry and the ys stacked. Double buffered: each iteration reads block c + 1
        before block c's step, so the next block's read does not wait on the current block's
        products and may overlap them."""

        def body(state, c):
            carry, current = state
            upcoming = self.block(c + 1)
            carry, y = step(carry, c, current)
            return (carry, upcoming), y

        steps = jnp.arange(self.blocks - 1)
        (carry, last), ys = lax.scan(body, (carry, self.block(0)), steps)
        carry, y = step(carry, self.blocks - 1, last)
        return carry, jax.tree.map(lambda a, b: jnp.concatenate([a, b[None]]), ys, y)


class PinnedParticles(AbstractStreamedHistory):
    """One particle system's (steps, particles, stored) history in host memory, read in
    `blocks` blocks of particles."""

    array: Float[Array, "steps particles stored"]
    blocks: int = eqx.field(static=True)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.array.shape

    def __getitem__(self, m) -> PinnedSlice:
        return PinnedSlice(self, jnp.asarray(m, jnp.int32))

    def write(self, entries: Float[Array, "steps particles new"], start) -> "PinnedParticles":
        new = _write(self.array, entries.astype(self.array.dtype), jnp.asarray(start, jnp.int32))
        return PinnedParticles(new, self.blocks)


def _read_one(array, m, lo, size):
    zero = jnp.zeros((), jnp.int32)
    block = lax.dynamic_slice(array, (m, lo, zero), (1, size, array.shape[-1]))[0]
    return jax.device_put(block, jax.memory.Space.Device)


def _unbatched_only(name, batched):
    if any(batched):
        raise NotImplementedError(f"a pinned history's {name} cannot be batched")


def _read(array, m, lo, size: int):
    read = custom_vmap(lambda array, m, lo: _read_one(array, m, lo, size))

    @read.def_vmap
    def _(axis_size, in_batched, array, m, lo):
        _unbatched_only("read indices", in_batched[1:])
        if not in_batched[0]:
            return _read_one(array, m, lo, size), False
        zero = jnp.zeros((), jnp.int32)
        shape = (axis_size, 1, size, array.shape[-1])
        block = lax.dynamic_slice(array, (zero, m, lo, zero), shape)[:, 0]
        return jax.device_put(block, jax.memory.Space.Device), True

    return read(array, m, lo)


@custom_vmap
def _write(array, entries, start):
    zero = jnp.zeros((), jnp.int32)
    update = jax.device_put(entries, jax.memory.Space.Host)
    return lax.dynamic_update_slice(array, update, (zero, zero, start))


@_write.def_vmap
def _write_batched(axis_size, in_batched, array, entries, start):
    _unbatched_only("write start", in_batched[2:])
    array, entries = (
        x if batched else jnp.broadcast_to(x, (axis_size, *x.shape))
        for x, batched in zip((array, entries), in_batched)
    )
    zero = jnp.zeros((), jnp.int32)
    update = jax.device_put(entries, jax.memory.Space.Host)
    return lax.dynamic_update_slice(array, update, (zero, zero, zero, start)), True


class PinnedHistories(AbstractHistoryStore):
    """The histories of one solve's `groups` in the host memory of the default device, read in
    `blocks` blocks of particles, two at a time. Refuses a device without a `pinned_host`
    memory."""

    buffered = 2
    transport = "copied inside the compiled step from the device's host memory"

    @classmethod
    def caveat(cls, backend: str) -> str | None:
        if backend == "cpu":
            return (
                "on a CPU XLA copies the whole history into device memory at each step, so "
                "this saves no memory there (solver.streaming='callbacks' does)"
            )
        return None

    def __init__(self, groups: int, steps: int, particles: int, stored: int, *, blocks, dtype):
        del groups  # each group's history is made by `empty`, and stacked by `stack`
        device = jax.devices()[0]
        kinds = [memory.kind for memory in device.addressable_memories()]
        if HOST_MEMORY not in kinds:
            raise ValueError(
                f"solver.streaming='memory_kinds' needs a device with a '{HOST_MEMORY}' memory; "
                f"{device} has {kinds}: use solver.streaming='callbacks'"
            )
        if particles % blocks:
            raise ValueError(f"{blocks} blocks do not divide {particles} particles")
        self.sizes, self.blocks, self.dtype = (steps, particles, stored), blocks, dtype
        self.host = SingleDeviceSharding(device, memory_kind=HOST_MEMORY)
        self.device = SingleDeviceSharding(device)
        self.made = 0

    def empty(self, name: str, group: int) -> PinnedParticles:
        """A placeholder for an empty history (zeros); `stack` makes the groups' histories in
        the device's host memory together."""
        return PinnedParticles(_EMPTY, self.blocks)

    def stack(self, trees: list):
        """The groups' initial states stacked, every (empty) history made in host memory from
        lazily mapped zero pages: never whole in device memory, which it does not fit, and
        never twice in host memory."""

        def pinned(x):
            return isinstance(x, PinnedParticles)

        def put(*xs):
            if not pinned(xs[0]):  # committed, as the step's outputs are: one compilation
                return jax.device_put(jnp.stack(xs), self.device)
            if any(x.array is not _EMPTY for x in xs):
                raise ValueError("only the groups' empty initial histories are stacked")
            zeros = np.zeros((len(xs), *self.sizes), self.dtype)
            array = jax.device_put(zeros, self.host)
            self.made += array.nbytes
            return PinnedParticles(array, xs[0].blocks)

        return jax.tree.map(put, *trees, is_leaf=pinned)

    @property
    def nbytes(self) -> int:
        return self.made

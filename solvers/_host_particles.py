"""Per-particle histories kept in a NumPy buffer in host memory, their blocks of particles
brought to the device through host callbacks (`solvers._streamed_history` says what a streamed
history provides).

Only one block of one depth step is on the device at a time; everything else a step holds (the
new pairs' paths, the pairs x pairs factors) stays as it is. Reads go through `pure_callback`,
writes of new pairs through `io_callback`. A write returns a new version number that later reads
take as an operand, so a read placed after a write in the program sees it. A read placed before
a write may still run after it: nothing orders a callback before a write that does not use its
result (on a CPU not even `lax.optimization_barrier`, measured). So each version also carries
how many slots it has filled, and a read sees the slots from there on as zero, as in a resident
history not yet written. The kernels are the same sums in another order, so a streamed solve
equals a resident one up to float round-off.

Values cross the callbacks as raw 32-bit words (`_to_words`): JAX converts a callback's float64
arrays to float32 on threads where `jax.enable_x64` is off, which XLA's callback threads are.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import io_callback
from jaxtyping import Array, Float, Int

from ._streamed_history import AbstractHistoryStore, AbstractStreamedHistory, AbstractStreamedSlice


class HostBuffer:
    """A NumPy buffer (groups, steps, particles, stored) in host memory, read a block of
    particles at a time. Compared by identity (it is a static field of `HostParticles`)."""

    def __init__(self, groups: int, steps: int, particles: int, stored: int, *, blocks, dtype):
        if particles % blocks:
            raise ValueError(f"{blocks} blocks do not divide {particles} particles")
        # np.zeros maps untouched pages lazily: host memory grows as pairs are written
        self.array = np.zeros((groups, steps, particles, stored), dtype)
        self.blocks = blocks
        self.block_size = particles // blocks

    def read(self, group, m, block, version) -> np.ndarray:
        del version  # orders the read after the writes that made it (see the module docstring)
        lo = int(block) * self.block_size
        block = np.ascontiguousarray(self.array[int(group), int(m), lo : lo + self.block_size])
        return block.view(np.uint32)

    def write(self, group, words, start, version) -> np.ndarray:
        """Write the entries (as `_to_words`) at slots start...; a start at the end slot
        writes nothing."""
        start = int(start)
        entries = np.asarray(words).view(self.array.dtype).reshape(words.shape[:-1] + (-1,))
        if start < self.array.shape[-1]:
            self.array[int(group), :, :, start : start + entries.shape[-1]] = entries
        return np.asarray(int(version) + 1, np.int32)


class HostSlice(AbstractStreamedSlice):
    """Depth step m of a `HostParticles`: (particles, stored), read block by block."""

    def block(self, index) -> Float[Array, "block stored"]:
        buffer = self.source.buffer
        dtype = buffer.array.dtype
        words = buffer.array.shape[-1] * dtype.itemsize // 4
        shape = jax.ShapeDtypeStruct((buffer.block_size, words), jnp.uint32)
        args = (self.source.group, self.m, index, self.source.version)
        raw = jax.pure_callback(buffer.read, shape, *args, vmap_method="sequential")
        block = _from_words(raw, dtype)
        # slots filled after this version was taken (a write run before this read) read as zero
        return jnp.where(jnp.arange(block.shape[-1]) < self.source.filled, block, 0)


class HostParticles(AbstractStreamedHistory):
    """One particle system's (steps, particles, stored) history in a `HostBuffer`: `group`
    is its index there, `version` counts the writes (an operand of every read), and the slots
    before `filled` are those this version has written (a read sees the rest as zero)."""

    group: Int[Array, ""]
    version: Int[Array, ""]
    filled: Int[Array, ""]
    buffer: HostBuffer = eqx.field(static=True)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.buffer.array.shape[1:]

    @property
    def blocks(self) -> int:
        return self.buffer.blocks

    def __getitem__(self, m) -> HostSlice:
        return HostSlice(self, jnp.asarray(m, jnp.int32))

    def write(self, entries: Float[Array, "steps particles new"], start) -> "HostParticles":
        """The history with `entries` written at slots start... (a start at the end slot:
        nothing is written); a new version."""
        version = io_callback(
            self.buffer.write,
            jax.ShapeDtypeStruct((), jnp.int32),
            self.group,
            _to_words(entries.astype(self.buffer.array.dtype)),
            jnp.asarray(start, jnp.int32),
            self.version,
        )
        start = jnp.asarray(start, jnp.int32)
        end = jnp.where(start < self.shape[-1], start + entries.shape[-1], 0)
        return HostParticles(self.group, version, jnp.maximum(self.filled, end), self.buffer)


def _to_words(x: Array) -> Array:
    """x's bits as uint32 words, the last axis widened by itemsize / 4."""
    words = lax.bitcast_convert_type(x, jnp.uint32)
    return words.reshape(*x.shape[:-1], -1)


def _from_words(words: Array, dtype) -> Array:
    ratio = jnp.dtype(dtype).itemsize // 4
    if ratio > 1:
        words = words.reshape(*words.shape[:-1], -1, ratio)
    return lax.bitcast_convert_type(words, dtype)


def host_particles(buffer: HostBuffer, group: int) -> HostParticles:
    return HostParticles(jnp.int32(group), jnp.int32(0), jnp.int32(0), buffer)


class HostHistories(AbstractHistoryStore):
    """The host buffers of one solve's `groups` particle systems, one per stored quantity,
    made on first use. Compared by identity (a static field shared by every group's solver)."""

    transport = "through host callbacks"

    def __init__(self, groups: int, steps: int, particles: int, stored: int, *, blocks, dtype):
        self.sizes = (groups, steps, particles, stored)
        self.blocks, self.dtype = blocks, dtype
        self.buffers: dict[str, HostBuffer] = {}

    def empty(self, name: str, group: int) -> HostParticles:
        if name not in self.buffers:
            self.buffers[name] = HostBuffer(*self.sizes, blocks=self.blocks, dtype=self.dtype)
        return host_particles(self.buffers[name], group)

    @property
    def nbytes(self) -> int:
        return sum(buffer.array.nbytes for buffer in self.buffers.values())

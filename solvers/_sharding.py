"""One array axis split over devices: a one-dimensional `jax.sharding.Mesh` and the
`NamedSharding`s that put one axis of an array on it.

A particle system is sharded by its particle axis: every per-particle array (parameters, the
stored history and white noise, the rows of a weight-space matrix) holds N / D particles on each
of D devices. Particle averages (kernels E[a b], outputs) are sums over that axis, which XLA
lowers to a local product and an all-reduce; everything indexed by pairs only (kernels, Cholesky
factors) is replicated, so the small pairs x pairs factorisations run on every device. The same
mesh puts the leading axis of a vmapped ensemble (seeds of finite networks) on devices
(`shard_leading_axis`).

Random draws do not depend on the sharding (JAX's partitionable threefry is on by default), so a
sharded solve draws the same noise as a one-device solve and differs from it only by the order
of the floating-point sums in the all-reduces.
"""

from collections.abc import Sequence

import equinox as eqx
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import PyTree


class AxisMesh(eqx.Module):
    """Devices along one named mesh axis, over which one axis of an array is split."""

    mesh: Mesh = eqx.field(static=True)

    @classmethod
    def over(cls, devices: Sequence[jax.Device], name: str) -> "AxisMesh":
        return cls(Mesh(np.asarray(devices), (name,)))

    @property
    def name(self) -> str:
        return self.mesh.axis_names[0]

    @property
    def size(self) -> int:
        return self.mesh.devices.size

    def sharding(self, ndim: int, axis: int | None) -> NamedSharding:
        """`axis` of an `ndim`-dimensional array split over the mesh (None: replicated)."""
        spec = [None] * ndim
        if axis is not None:
            spec[axis] = self.name
        return NamedSharding(self.mesh, PartitionSpec(*spec))

    def constrain(self, x: jax.Array, axis: int | None) -> jax.Array:
        """Inside a traced function: lay `x` out with `axis` split over the mesh. Under `vmap`
        the mapped axis is added unsplit."""
        return jax.lax.with_sharding_constraint(x, self.sharding(x.ndim, axis))

    def put(self, x: jax.Array, axis: int | None) -> jax.Array:
        """Outside a traced function: move `x` onto the mesh with `axis` split."""
        return jax.device_put(x, self.sharding(x.ndim, axis))


def largest_divisor(size: int, most: int) -> int:
    """The largest d <= `most` that divides `size`: how many devices can split `size` evenly."""
    return max(d for d in range(1, max(most, 1) + 1) if size % d == 0)


def shard_leading_axis(
    tree: PyTree, *, devices: Sequence[jax.Device] | None = None, name: str = "ensemble"
) -> PyTree:
    """Every array leaf of `tree` with its leading axis (an ensemble: seeds, learning rates)
    split over `devices` (default: all), other leaves as they are. The axis is split over the
    largest number of those devices that divides its length (one device: nothing moves).
    Arrays of zero dimensions are replicated. A jitted `vmap` over that axis then runs each
    device's members there."""
    devices = list(jax.devices() if devices is None else devices)
    leaves = [x for x in jax.tree.leaves(tree) if eqx.is_array(x) and x.ndim]
    if not leaves:
        return tree
    length = leaves[0].shape[0]
    if any(x.shape[0] != length for x in leaves):
        raise ValueError("shard_leading_axis: the array leaves have different leading lengths")
    mesh = AxisMesh.over(devices[: largest_divisor(length, len(devices))], name)

    def put(x):
        if not eqx.is_array(x):
            return x
        return mesh.put(x, 0 if x.ndim else None)

    return jax.tree.map(put, tree)

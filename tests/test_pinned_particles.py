"""`solvers.PinnedParticles`, a history in the device's pinned host memory: its block reads,
products and particle averages against NumPy on the same numbers, batched over groups as a
solve's vmapped step batches them, and the double buffering of its reads.

Tolerance 1e-12 relative in float64: the same sums as NumPy's, block by block (round-off about
1e-16 per term)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import SingleDeviceSharding

from solvers import PinnedParticles

STEPS, PARTICLES, STORED, BLOCKS = 3, 16, 5, 4


def _host(array):
    device = jax.devices()[0]
    return jax.device_put(array, SingleDeviceSharding(device, memory_kind="pinned_host"))


@pytest.fixture
def numbers():
    rng = np.random.default_rng(0)
    history = rng.normal(size=(2, STEPS, PARTICLES, STORED))
    matrix = rng.normal(size=(STORED, 3))
    other = rng.normal(size=(PARTICLES, 2))
    entries = rng.normal(size=(2, STEPS, PARTICLES, 2))
    return history, matrix, other, entries


def test_reads_writes_and_averages_equal_numpy_in_one_group_and_batched(numbers):
    history, matrix, other, entries = numbers

    def use(array, entries, m, start):
        h = PinnedParticles(array, BLOCKS)
        written = h.write(entries, start)
        return h[m] @ matrix, h[m].gram(other), written.array

    with jax.enable_x64(True):
        one = jax.jit(use)
        product, gram, written = one(_host(history[0]), entries[0], 2, 1)
        batched = jax.jit(jax.vmap(use, in_axes=(0, 0, None, None)))
        products, grams, writtens = batched(_host(history), entries, 2, 1)
        assert writtens.sharding.memory_kind == "pinned_host"
    want = history.copy()
    want[:, :, :, 1:3] = entries

    def close(got, expected):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12 * np.abs(expected).max())

    for g in range(2):
        close(products[g], history[g, 2] @ matrix)
        close(grams[g], history[g, 2].T @ other / PARTICLES)
        np.testing.assert_array_equal(writtens[g], want[g])
    close(product, products[0])
    close(gram, grams[0])
    np.testing.assert_array_equal(written, want[0])


def test_the_next_block_is_read_before_the_current_blocks_products(numbers):
    """In the loop over blocks, the read of a block is carried to the next iteration (double
    buffering), never consumed by a product of the iteration that issued it: nothing in the
    program makes the next block's copy wait for the current block's products."""
    history, _, other, _ = numbers
    h = PinnedParticles(_host(history[0]), BLOCKS)
    jaxpr = jax.make_jaxpr(lambda h, a: h[1].gram(a))(h, jnp.asarray(other))
    (scan,) = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "scan"]
    body = scan.params["jaxpr"].jaxpr
    carries = scan.params["num_carry"]
    reads = [e for e in body.eqns if e.primitive.name == "custom_vmap_call"]
    assert len(reads) == 1 and scan.params["length"] == BLOCKS - 1
    (block,) = reads[0].outvars
    assert block in body.outvars[:carries]  # the read goes into the carry
    consumers = [e for e in body.eqns if block in e.invars]
    assert consumers == []  # and nothing in this iteration uses it

"""CPU and memory quantities, read as JupyterHub applies them."""

import pytest

from cern_spawner.catalog.quantities import memory_for_kubespawner, parse_cpu, parse_memory

pytestmark = pytest.mark.unit

GIB = 1024**3


@pytest.mark.parametrize(
    "text, cores",
    [(2, 2.0), (0.5, 0.5), ("2", 2.0), ("0.25", 0.25), ("500m", 0.5), ("1500m", 1.5)],
    ids=["int", "float", "string", "string-fraction", "millicores", "millicores-above-one"],
)
def test_cpu(text, cores):
    assert parse_cpu(text) == cores


@pytest.mark.parametrize(
    "text, size",
    [
        (1073741824, GIB),
        ("1073741824", GIB),
        ("1G", GIB),
        ("1Gi", GIB),
        ("512M", 512 * 1024**2),
        ("1.5Gi", GIB * 3 // 2),
        ("2T", 2 * 1024**4),
        ("4K", 4096),
    ],
    ids=["int-bytes", "string-bytes", "G", "Gi", "M", "fraction-Gi", "T", "K"],
)
def test_memory(text, size):
    assert parse_memory(text) == size


@pytest.mark.parametrize(
    "parse, value",
    [
        (parse_memory, "2 GB"),
        (parse_memory, "1g"),
        (parse_memory, "1k"),
        (parse_memory, "1P"),
        (parse_memory, "1.5"),
        (parse_memory, 0),
        (parse_memory, True),
        (parse_cpu, "2 cores"),
        (parse_cpu, "500Mi"),
        (parse_cpu, 0),
        (parse_cpu, "-1"),
        (parse_cpu, True),
    ],
    ids=[
        "mem-space-unit",
        "mem-lowercase",
        "mem-decimal-k",
        "mem-peta",
        "mem-fractional-bytes",
        "mem-zero",
        "mem-bool",
        "cpu-words",
        "cpu-memory-unit",
        "cpu-zero",
        "cpu-negative",
        "cpu-bool",
    ],
)
def test_refused(parse, value):
    with pytest.raises(ValueError):
        parse(value)


@pytest.mark.parametrize(
    "text, value",
    [("2G", "2G"), ("512M", "512M"), ("2Gi", 2 * GIB), ("1073741824", GIB)],
    ids=["jupyterhub-unit-kept", "M-kept", "Gi-to-bytes", "bytes-to-int"],
)
def test_memory_for_kubespawner(text, value):
    # JupyterHub's ByteSpecification refuses "Gi" and digit-only strings: those become bytes.
    assert memory_for_kubespawner(text) == value

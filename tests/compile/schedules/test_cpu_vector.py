"""The SIMD shape each profile's target gets: AVX2 8 lanes, AVX-512 16, NEON 4."""

import pytest

from tvmdeploy.compile.schedules.cpu_vector import vector_unit


@pytest.mark.parametrize(
    ("profile_name", "lanes", "registers", "isa"),
    [("x86-avx2", 8, 16, "avx2"), ("x86-avx512", 16, 32, "avx512"), ("arm-cortex-a72", 4, 32, "neon"), ("arm-cortex-a53", 4, 32, "neon")],
)
def test_vector_unit_follows_the_target(profile_name, lanes, registers, isa):
    import tvm

    from tvmdeploy.targets import load_profile

    unit = vector_unit(tvm.target.Target(load_profile(profile_name).target))
    assert (unit.lanes, unit.registers, unit.isa) == (lanes, registers, isa)
    assert unit.fits(1, 1) and not unit.fits(unit.registers, 1)
